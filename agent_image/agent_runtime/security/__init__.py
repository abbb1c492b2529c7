"""The security envelope: JWT authentication, role permissions, rate limits, PII anonymisation, audit."""
