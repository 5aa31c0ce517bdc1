"""Delivery, one sub-package per mechanism: `telegram` (aiogram routers), `http` (aiohttp views), `cli`."""
