"""The explorer: change sigma, the step size, the sampler or the target, and see the samples answer.

:func:`explorer` returns an ``ipywidgets`` interface (the same in a notebook and in the web page
``python -m ncsn_toy explore`` serves with Voilà): controls for every field of
:class:`~.explore_core.ExploreSettings`, the picture of :class:`~.explore_picture.ExplorePicture`
(the gallery's renderer), a scrubber and a play button over the recorded frames, and the numbers
of :func:`~.explore_core.explore` as a line that starts with "weights", and a note on what the
picture shows for the chosen sampler (and why its preset is what it is).

Every change of a control asks for a new run. The first run happens before :func:`explorer`
returns; the others in one background thread, so the page stays responsive while a trained
network samples (a progress bar shows how far it is), and a newer request stops the running one
at its next score evaluation. Scrubbing redraws a recorded frame without resampling. Settings
that cannot run (sigma_min >= sigma_max, a step size that diverges, ...) show a readable message
instead of the numbers; the page keeps working.

Choosing a sampler loads its preset. A trained score network is never started above the largest
noise level it was trained for by a sampler that starts from the prior: there its output means
nothing, and the probability flow would carry that to the end.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets

from ..recipes import DEFAULT_CHECKPOINTS
from ..runtime import ThreadPolicy
from ..samplers import SamplerDivergedError
from .explore_controls import SAMPLER_FIELDS, controls, stops
from .explore_core import SCORES, Cancelled, ExploreResult, ExploreSettings, Networks, explore
from .explore_picture import ExplorePicture
from .explore_samplers import samplers

__all__ = ["explorer", "Explorer"]

PROGRESS_SECONDS = 0.1  # shortest time between two updates of the progress bar
PLAY_MS = 150  # time per frame when animating


class Explorer(widgets.HBox):
    """The explorer's interface; build it with :func:`explorer`.

    Attributes: ``controls`` (name -> widget, one per setting), ``picture`` (an ``Image`` of PNG
    bytes: the particles, and under them the mode weights along the run), ``frame`` (the
    scrubber), ``play`` (animates ``frame``), ``numbers`` (the text "weights ..."), ``note``
    (what the picture shows for this sampler), ``message`` (readable errors), ``progress``;
    ``result`` is the last :class:`ExploreResult` shown.
    """

    def __init__(
        self,
        settings: ExploreSettings,
        networks: Networks,
        *,
        n_frames: int,
        threads: ThreadPolicy | None = None,
    ) -> None:
        self.networks = networks
        self.n_frames = n_frames
        self.threads = threads
        self.result: ExploreResult | None = None
        self._picture = ExplorePicture()
        network = samplers()[settings.sampler].network
        self.controls = controls(settings, networks.scores(settings.target, network))
        width, _ = self._picture.size()
        # as wide as the picture it shows: pixel for pixel
        self.picture = widgets.Image(format="png", layout=widgets.Layout(width=f"{width}px"))
        self.frame = widgets.IntSlider(
            value=0,
            min=0,
            max=0,
            description="frame",
            continuous_update=True,
            layout=widgets.Layout(width="260px"),
            style={"description_width": "45px"},
        )
        self.frame_label = widgets.Label()
        self.play = widgets.Play(value=0, min=0, max=0, interval=PLAY_MS, description="animate")
        # animates in the page itself, without a round trip to the kernel
        widgets.jslink((self.play, "value"), (self.frame, "value"))
        # HTML wraps long lines, unlike a Label
        self.numbers = widgets.HTML(layout=widgets.Layout(width=f"{width}px"))
        self.note = widgets.HTML(layout=widgets.Layout(width=f"{width}px"))
        self.message = widgets.HTML()
        self.progress = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description="sampling",
            layout=widgets.Layout(visibility="hidden"),
        )
        for widget, css in (
            (self.numbers, "ncsn-numbers"),
            (self.note, "ncsn-note"),
            (self.message, "ncsn-message"),
            (self.picture, "ncsn-picture"),
            (self.progress, "ncsn-progress"),
            (self.frame_label, "ncsn-frame"),
        ):
            widget.add_class(css)
        # the scrubber and the numbers above the picture (which is tall, with its curve), so
        # that they stay in sight on a laptop's screen
        view = widgets.VBox(
            [
                widgets.HBox([self.play, self.frame, self.frame_label]),
                self.numbers,
                self.message,
                self.progress,
                self.picture,
                self.note,
            ]
        )
        column = widgets.VBox(
            list(self.controls.values()), layout=widgets.Layout(flex="0 0 auto", width="380px")
        )
        super().__init__([column, view])
        self._lock = threading.RLock()  # one drawer of the picture at a time (worker or scrubber)
        self._wake = threading.Condition()  # guards the fields below
        self._wanted: dict | None = None  # control values of the newest request not yet started
        self._generation = 0  # number of requests so far; a run whose number is older stops
        self._busy = False  # True while a run is in progress
        self._closed = False  # True once close() was called: the worker stops
        self._hold = 0  # > 0 while several controls change at once (one request at the end)
        self._moving_frame = False  # True while the worker moves the scrubber to a new result
        self._thread = threading.Thread(target=self._loop, name="ncsn-explorer", daemon=True)
        self._thread.start()
        handlers = {
            "sampler": self._on_sampler,
            "target": self._on_target,
            "score": self._on_score,
        }
        for name, widget in self.controls.items():
            widget.observe(handlers.get(name, self._on_change), names="value")
        self.frame.observe(self._on_frame, names="value")
        self._grey_out()
        self._show_note()

    # ------------------------------------------------------------------ controls
    def settings(self) -> ExploreSettings:
        """The settings the controls show (raises ``ValueError`` for settings that cannot exist)."""
        return ExploreSettings(**self._values())

    def set(self, **values: object) -> None:
        """Set several controls at once, with one run for all of them.

        For example ``set(sigma_max=2, n_levels=5)``. Applied in the order of the controls, so a
        sampler's preset comes before the values given with it; a value between the stops of a
        slider is added to its stops.
        """
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; expected some of {list(self.controls)}")
        with self._holding():
            for name in self.controls:
                if name in values:
                    self._put(name, values[name])
        self._grey_out()
        self._show_note()
        self.request()

    def _put(self, name: str, value: object) -> None:
        """Set control ``name`` to ``value``; a value between a slider's stops becomes a stop."""
        widget = self.controls[name]
        if isinstance(widget, widgets.SelectionSlider):
            known = [option_value for _, option_value in widget.options]
            if value not in known:
                widget.options = stops(*known, value)
        widget.value = value

    def _values(self) -> dict:
        """The keyword arguments of :class:`ExploreSettings` the controls show."""
        values = {name: widget.value for name, widget in self.controls.items()}
        values["n_frames"] = self.n_frames
        return values

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

    def _on_change(self, change: dict) -> None:
        if not self._hold:
            self.request()

    def _on_sampler(self, change: dict) -> None:
        """A new sampler brings its usual settings (its preset); one run for all the changes."""
        with self._holding():
            for name, value in samplers()[change["new"]].preset.items():
                self._put(name, value)
            self._offer_scores()
            self._keep_the_network_in_its_range()
            self._grey_out()
        self._show_note()
        self._on_change(change)

    def _on_target(self, change: dict) -> None:
        """Offer the trained network only where a committed checkpoint exists for the target."""
        with self._holding():
            self._offer_scores()
            self._keep_the_network_in_its_range()
        self._on_change(change)

    def _on_score(self, change: dict) -> None:
        with self._holding():
            self._keep_the_network_in_its_range()
        self._on_change(change)

    def _offer_scores(self) -> None:
        """The trained model only where its checkpoint exists (for this target and sampler)."""
        network = samplers()[self.controls["sampler"].value].network
        scores = self.networks.scores(self.controls["target"].value, network)
        score = self.controls["score"]
        keep = score.value if score.value in scores else "exact"
        score.options = [(SCORES[k], k) for k in scores]
        score.value = keep

    def _keep_the_network_in_its_range(self) -> None:
        """sigma_max at most the trained network's largest level, for a start from the prior."""
        entry = samplers()[self.controls["sampler"].value]
        if entry.start != "prior" or self.controls["score"].value != "trained":
            return
        largest = self.networks.largest_sigma(self.controls["target"].value)
        if self.controls["sigma_max"].value > largest:
            self._put("sigma_max", largest)

    def _grey_out(self) -> None:
        uses = samplers()[self.controls["sampler"].value].uses
        for name in SAMPLER_FIELDS:
            self.controls[name].disabled = name not in uses

    def _show_note(self) -> None:
        self.note.value = html.escape(samplers()[self.controls["sampler"].value].note)

    # ------------------------------------------------------------------ runs, in the worker thread
    def request(self) -> None:
        """Ask for a run with the current settings (the newest request wins)."""
        with self._wake:
            self._wanted = self._values()
            self._generation += 1
            self._wake.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every requested run has finished; False if ``timeout`` seconds pass first."""
        with self._wake:
            return self._wake.wait_for(lambda: self._wanted is None and not self._busy, timeout)

    def close(self) -> None:
        """Stop the worker thread (cancelling a run in progress) and close every widget."""
        if not hasattr(self, "_thread"):
            # a construction that failed (ipywidgets closes it when collected)
            return super().close()
        with self._wake:
            self._closed = True
            self._wanted = None
            # a run in progress stops at its next score evaluation and shows nothing
            self._generation += 1
            self._wake.notify_all()
        for widget in (
            *self.controls.values(),
            self.picture,
            self.frame,
            self.frame_label,
            self.play,
            self.numbers,
            self.note,
            self.message,
            self.progress,
            *self.children,
        ):
            widget.close()
        super().close()

    def _loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._wanted is not None or self._closed)
                if self._closed:
                    return
                values = self._wanted
                generation = self._generation
                self._wanted = None
                self._busy = True
            try:
                self._run(values, generation)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
            if self.threads is not None:
                # The machine's load may have changed. Measuring it takes 0.1 s (at most every
                # 2 s): done while the learner looks at the result, not before the next run.
                self.threads.refresh()

    def _run(self, values: dict, generation: int) -> None:
        started = time.monotonic()
        last_shown = started  # when the progress bar was last updated

        def progress(done: int, total: int) -> None:
            nonlocal last_shown
            if generation != self._generation:
                raise Cancelled  # newer settings are waiting
            now = time.monotonic()
            if now - last_shown >= PROGRESS_SECONDS:
                self.progress.value = min(done / max(total, 1), 1.0)
                last_shown = now
                # shown only for runs that take a while
                if now - started >= 2 * PROGRESS_SECONDS:
                    self.progress.layout.visibility = "visible"

        try:
            result = explore(ExploreSettings(**values), networks=self.networks, progress=progress)
            self._show(result, generation)
        except Cancelled:
            return
        except SamplerDivergedError as err:
            self._fail(f"The sampler diverged: {err}.", generation)
        except (ValueError, TypeError, FileNotFoundError) as err:
            self._fail(f"These settings cannot run: {err}", generation)
        except Exception as err:  # never a traceback in the page: say what happened, keep working
            self._fail(f"Something went wrong ({type(err).__name__}): {err}", generation)
        finally:
            if generation == self._generation:
                self.progress.layout.visibility = "hidden"

    def _show(self, result: ExploreResult, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # superseded while measuring
            last = len(result.frames) - 1
            png = self._picture.png(result, last)
            self.result = result
            self._moving_frame = True
            try:
                self.frame.max = self.play.max = last
                self.frame.value = self.play.value = last
            finally:
                self._moving_frame = False
            self.picture.value = png
            self.frame_label.value = self._frame_text(last)
            self.numbers.value = html.escape(result.numbers())
            self.message.value = ""

    def _fail(self, text: str, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # superseded (or closed) meanwhile: newer settings will speak
            self.numbers.value = ""
            self.message.value = f'<span style="color:#b00020">{html.escape(text)}</span>'

    # ------------------------------------------------------------------ scrubbing, caller's thread
    def _on_frame(self, change: dict) -> None:
        with self._lock:
            if self._moving_frame or self.result is None:
                return  # the worker is showing a new result
            frame = min(int(change["new"]), len(self.result.frames) - 1)
            self.picture.value = self._picture.png(self.result, frame)
            self.frame_label.value = self._frame_text(frame)

    def _frame_text(self, frame: int) -> str:
        return f"{self.result.where(frame)}, step {int(self.result.steps[frame])}"


def explorer(
    settings: ExploreSettings | None = None,
    *,
    checkpoints: str | Path = DEFAULT_CHECKPOINTS,
    threads: ThreadPolicy | None = None,
) -> Explorer:
    """The interactive explorer, an ``ipywidgets`` box to display in a notebook.

    ``python -m ncsn_toy explore`` serves the same box as a web page.

    Args:
        settings: what it shows first (default: the paper's annealed Langevin on two Gaussians,
            exact score, 2000 particles).
        checkpoints: the folder of the trained networks ``ncsn_<target>.pt``.
        threads: the thread policy, applied now and refreshed after every run (default: a new
            :class:`~ncsn_toy.runtime.ThreadPolicy`; ``NCSN_TOY_THREADS`` or
            ``OMP_NUM_THREADS`` win).

    The first run happens here, before the interface is returned, so that it is part of the state
    a page receives when it first draws the widgets (an update sent before Voilà's page has
    connected to the kernel would be lost); later runs happen in the background (``.wait()``
    blocks until they are shown).
    """
    settings = ExploreSettings() if settings is None else settings
    if not isinstance(settings, ExploreSettings):
        raise TypeError(
            f"settings must be an ExploreSettings or None, got {type(settings).__name__}"
        )
    threads = threads or ThreadPolicy()
    threads.apply()
    box = Explorer(settings, Networks(checkpoints), n_frames=settings.n_frames, threads=threads)
    box._run(box._values(), box._generation)
    return box
