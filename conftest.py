"""Shared by the ShopFlow load suite and the plugin's own tests; the plugin itself owns nothing here."""

from __future__ import annotations
