"""The scanner side of the closed loop: measured BOLD from the real-time export folder."""
