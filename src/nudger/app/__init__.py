"""What a person runs: the service, status and explain, reports, the demo, sd_notify."""
