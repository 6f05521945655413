"""Payment gateways: one file per gateway type, found by `gateways.registry`."""
