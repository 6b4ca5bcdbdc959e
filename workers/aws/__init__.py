"""AWS drivers: the backend interface, ECS / Cloud Map / CloudWatch parts, one package a backend."""
