"""Point-in-time training sets: chronological windows with a label-delay gap."""
