"""pspike-neuro: deploy spiking state-space models to Loihi-2-style fixed point and simulate them."""

__version__ = "0.1.0"
