"""`pollen dead-letters replay`: drain the SQS dead-letter queue of a deployment back into its tables and index."""

from __future__ import annotations

import typer

from pollen import wiring
from pollen.cli import runtime as rt
from pollen.deadline import Deadline

app = typer.Typer(help="Dead letters the Lambda functions left on the SQS dead-letter queue.", no_args_is_help=True)


@app.command("replay")
def replay(
    ctx: typer.Context,
    queue_url: str | None = typer.Option(
        None, "--queue-url", help="The dead-letter queue (POLLEN_DEAD_LETTER_QUEUE_URL; the stack's output)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Replay at most this many messages."),
    deadline_s: float | None = typer.Option(None, "--deadline", help="Stop after this many seconds."),
    json_output: bool = rt.JSON_OPTION,
) -> None:
    """Write dead-lettered items back into their tables and stream records into the search index, deleting each
    message once handled. What fails again goes to the local dead-letter files under POLLEN_HOME (not back to the
    queue); stream records the index does not take stay on the queue."""
    from pollen.jobs.replay import replay_dead_letters
    from pollen.report import Stopwatch

    runtime = rt.start(ctx, json_output)

    def action() -> None:
        watch = Stopwatch()
        settings = runtime.settings
        queue = wiring.build_dead_letter_reader(settings, queue_url)
        sync = wiring.build_stream_sync(settings, runtime.metrics)
        store, local = wiring.build_replay_store(settings, runtime.metrics)
        try:
            with store:
                report = replay_dead_letters(queue, store, sync=sync, limit=limit, deadline=Deadline.after(deadline_s))
        finally:
            sync.index.close()
        for path in local.files():
            report.add_error(f"failed again, kept in {path}")
        report.duration_s = watch.elapsed_s
        rt.finish(runtime, report)

    rt.run(runtime, action)
