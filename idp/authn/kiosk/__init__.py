"""Kiosk login: self-service terminals in service halls log people in by the
resident ID card or social security card they read."""
