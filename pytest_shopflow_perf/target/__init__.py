"""The target rule (loopback unless allowed) and the embedded ShopFlow reference service."""
