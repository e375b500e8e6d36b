"""``default.toml``: every setting, with its default and meaning.

Read as the package ``idp.defaults`` (``importlib.resources``): the wheel
carries this folder inside ``idp``, and setup.py maps it there.
"""
