"""Themes of the login, consent and account pages, one folder each.

Read as the package ``idp.themes`` (``importlib.resources``): the wheel
carries this folder inside ``idp``, and setup.py maps it there.
"""
