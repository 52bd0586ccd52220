"""Built-in plantd services (each an MDP worker following the service-call convention)."""
