"""The `xbus` command. Errors we expect become one readable line and an exit code, not a traceback."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from infrastructure.errors import XbusError
from xbus.cli import dlq_cmd, schemas_cmd, stack_cmd, status_cmd, tokens_cmd, topics_cmd
from xbus.cli.common import err
from xbus.cli.demo_cmd import demo
from xbus.cli.faults import unreachable
from xbus.cli.lag_cmd import lag
from xbus.cli.monitor_cmd import monitor
from xbus.cli.publish_cmd import publish
from xbus.cli.rebuild_cmd import rebuild
from xbus.cli.replay_cmd import replay
from xbus.cli.run_cmd import db, run_services
from xbus.cli.serve_cmd import serve
from xbus.cli.tail_cmd import tail

app = typer.Typer(
    name="xbus",
    help="xosp-bus: lifecycle events of the XOSP trading platform on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(db, name="db")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(tokens_cmd.app, name="tokens")
app.command()(publish)
app.command()(tail)
app.command()(demo)
app.command("monitor")(monitor)
app.command("run")(run_services)
app.command("status")(status_cmd.status)
app.command("rebuild")(rebuild)
app.command("lag")(lag)
app.command("replay")(replay)
app.command("serve")(serve)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except XbusError as error:
        err.print(f"[red]xbus:[/red] {error}", highlight=False)
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        # click's usage errors; typer vendors click (typer._click) in newer releases, so match by shape
        show, exit_code = getattr(error, "show", None), getattr(error, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if line := unreachable(error):
            err.print(f"[red]xbus:[/red] {escape(line)}", highlight=False)
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)
