"""rlm_python3 hooks: the FreeRADIUS adapter."""
