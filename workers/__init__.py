"""Long-running work beside the API: the projection followers (follower.py, views.py) and the mailer (mailer.py, mail.py)."""
