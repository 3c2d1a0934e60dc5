"""The captive portal (Flask)."""
