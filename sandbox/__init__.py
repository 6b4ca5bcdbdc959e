"""The sandbox (`make demo`) and the end-to-end tests' world: stand-ins for AWS, Redis and Slack."""
