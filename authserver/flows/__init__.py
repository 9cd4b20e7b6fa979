"""Multi-step state machines: login, registration, step-up, and the sessions they end in."""
