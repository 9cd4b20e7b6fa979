"""Rules: assurance levels, step-up freshness, rate limits and lockout, risk."""
