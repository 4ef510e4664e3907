"""Public routes: anyone may call them, rate-limited and size-limited: the form, responses, signups and their pages."""
