"""HTTP only: controllers, request/response structs, guards, problem+json."""
