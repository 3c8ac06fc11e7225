"""The vault: the sandbox's only way out. Model gateway and egress proxy now; secrets and policy later."""
