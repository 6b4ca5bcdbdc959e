"""Pure records and rules of the domain: states, deployments, the catalogue, images, weights."""
