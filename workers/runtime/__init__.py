"""How the engine runs: the process runtime, RQ queues and jobs, the scheduler, worker threads."""
