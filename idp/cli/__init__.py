"""The ``idp`` command: the root group and its command groups, one module
each (:mod:`~idp.cli.serve`, :mod:`~idp.cli.demo`, :mod:`~idp.cli.db`,
:mod:`~idp.cli.users`, :mod:`~idp.cli.clients`, :mod:`~idp.cli.keys`,
:mod:`~idp.cli.sandbox`, :mod:`~idp.cli.migrate`)."""

from __future__ import annotations

import click

from idp.cli import clients, db, demo, keys, migrate, sandbox, serve, users
from idp.cli.group import IdpGroup, create_command_app


@click.group(cls=IdpGroup, create_app=create_command_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Provincial identity provider (OpenID Connect Provider).

    Settings come from config/default.toml and IDP_* environment variables;
    the instance folder is ./instance unless IDP_INSTANCE_PATH says otherwise.
    """


# The modules keep their own names here (not their commands'), so that
# idp.cli.serve and the like stay the modules.
for _command in (serve.serve, demo.demo, db.database, users.users, clients.clients,
                 keys.keys, sandbox.sandbox, migrate.migrate):
    main.add_command(_command)
