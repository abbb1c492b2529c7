"""Health polling, restart and scaling decisions for the agents the operator runs."""
