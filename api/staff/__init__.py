"""Staff routes: signed in, each guarded by the roles it needs: accounts, the review queue, the coding frame, attendees."""
