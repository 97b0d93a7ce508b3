"""The xosp-bus platform: settings, embedded stack, topic admin, CLI."""
