"""ALB backend: weighted target groups of a listener rule or a listener default action."""
