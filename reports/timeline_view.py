"""An interactive per-rank timeline for the HTML report: a canvas drawn by a small inline script from
embedded JSON (no library, no network). Mouse wheel zooms around the pointer, dragging pans,
double-click (or the button) resets; hovering a box names its action, micro-batch, start and length."""

from __future__ import annotations

import json

from sim.pipeline.ops import Op
from sim.run import TrainingRun

KINDS = ["F", "B", "I", "W", "F&B", "reduce-scatter", "optimizer", "all-gather"]
COLOURS = ["#4c78a8", "#54a24b", "#8fd175", "#e0c341", "#4c78a8", "#e45756", "#b279a2", "#f58518"]
_CODE = {Op.F: 0, Op.B: 1, Op.I: 2, Op.W: 3, Op.FB: 4}


def timeline_data(run: TrainingRun) -> dict[str, object]:
    """Per rank: [start ms, end ms, kind, micro-batch, second micro-batch (F&B's backward) or -1]."""
    pipe = run.step.reported_pipeline()
    sched = pipe.run.schedule
    ranks: list[list[list[float]]] = [[] for _ in range(sched.num_devices)]
    for s in pipe.run.recorder.spans:
        a = sched.actions[s.device][s.pos]
        mb, mb2 = (a.parts[0].mb, a.parts[1].mb) if a.op is Op.FB else (a.mb, -1)
        ranks[s.device].append([round(s.start * 1e3, 3), round(s.end * 1e3, 3), _CODE[a.op], mb, mb2])
    for d, t in enumerate(run.step.timelines):
        for start, end in (*t.reduce_scatter, *((t.embedding_sync,) if t.embedding_sync else ())):
            ranks[d].append([round(start * 1e3, 3), round(end * 1e3, 3), 5, -1, -1])  # DP communication
        ranks[d].append([round(t.optimizer[0] * 1e3, 3), round(t.optimizer[1] * 1e3, 3), 6, -1, -1])
        ranks[d].append([round(t.all_gather[0] * 1e3, 3), round(t.all_gather[1] * 1e3, 3), 7, -1, -1])
    for spans in ranks:
        spans.sort()
    return {"end": round(run.result.step_time_s * 1e3, 3), "ranks": ranks, "kinds": KINDS, "colours": COLOURS}


_SCRIPT = r"""
(function () {
  var root = document.getElementById('tl');
  var data = JSON.parse(document.getElementById('tl-data').textContent);
  var canvas = root.querySelector('canvas');
  var info = root.querySelector('.tl-info');
  var ctx = canvas.getContext('2d');
  var LEFT = 64, RIGHT = 12, TOP = 6, ROW = 20, AXIS = 26;
  var t0 = 0, t1 = data.end, drag = null;
  function width() { return canvas.clientWidth; }
  function xOf(t) { return LEFT + (t - t0) / (t1 - t0) * (width() - LEFT - RIGHT); }
  function tOf(x) { return t0 + (x - LEFT) / (width() - LEFT - RIGHT) * (t1 - t0); }
  function resize() {
    var r = window.devicePixelRatio || 1, w = root.clientWidth, h = TOP + data.ranks.length * ROW + AXIS;
    canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
    canvas.width = Math.round(w * r); canvas.height = Math.round(h * r);
    ctx.setTransform(r, 0, 0, r, 0, 0);
    draw();
  }
  function niceStep(span) {
    var raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }
  function draw() {
    var w = width(), rows = data.ranks.length;
    ctx.clearRect(0, 0, w, canvas.height);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (var i = 0; i < rows; i++) {
      var y = TOP + i * ROW;
      ctx.fillStyle = i % 2 ? '#f7f8fb' : '#ffffff';
      ctx.fillRect(LEFT, y, w - LEFT - RIGHT, ROW);
      ctx.fillStyle = '#333';
      ctx.fillText('rank ' + i, 4, y + ROW / 2);
      var spans = data.ranks[i];
      for (var j = 0; j < spans.length; j++) {
        var s = spans[j];
        if (s[1] < t0 || s[0] > t1) continue;
        var x0 = Math.max(LEFT, xOf(s[0])), x1 = Math.min(w - RIGHT, xOf(s[1])), bw = Math.max(0.6, x1 - x0);
        if (s[2] === 4) {
          ctx.fillStyle = data.colours[0]; ctx.fillRect(x0, y + 2, bw, (ROW - 4) / 2);
          ctx.fillStyle = data.colours[1]; ctx.fillRect(x0, y + ROW / 2, bw, (ROW - 4) / 2);
        } else {
          ctx.fillStyle = data.colours[s[2]]; ctx.fillRect(x0, y + 2, bw, ROW - 4);
        }
        if (bw > 3) {
          ctx.strokeStyle = 'rgba(0,0,0,0.35)'; ctx.lineWidth = 0.5; ctx.strokeRect(x0, y + 2, bw, ROW - 4);
        }
        if (bw > 22 && s[3] >= 0) {
          ctx.fillStyle = '#fff';
          ctx.fillText(String(s[3]) + (s[4] >= 0 ? '/' + s[4] : ''), x0 + 2, y + ROW / 2);
        }
      }
    }
    var yAxis = TOP + rows * ROW, step = niceStep(t1 - t0);
    ctx.strokeStyle = '#888'; ctx.fillStyle = '#333'; ctx.textBaseline = 'top';
    ctx.beginPath(); ctx.moveTo(LEFT, yAxis); ctx.lineTo(w - RIGHT, yAxis); ctx.stroke();
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      var x = xOf(t);
      ctx.beginPath(); ctx.moveTo(x, yAxis); ctx.lineTo(x, yAxis + 4); ctx.stroke();
      var label = step >= 1000 ? (t / 1000).toFixed(step >= 10000 ? 0 : 1) + ' s'
        : t.toFixed(step >= 1 ? 0 : 2) + ' ms';
      ctx.fillText(label, x - 12, yAxis + 6);
    }
  }
  function clamp() {
    var span = Math.max(0.01, Math.min(data.end, t1 - t0));
    t0 = Math.max(0, Math.min(t0, data.end - span)); t1 = t0 + span;
  }
  function hit(ev) {
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    var i = Math.floor((y - TOP) / ROW), t = tOf(x);
    if (i < 0 || i >= data.ranks.length || x < LEFT) return null;
    var spans = data.ranks[i];
    for (var j = 0; j < spans.length; j++) if (spans[j][0] <= t && t <= spans[j][1]) return [i, spans[j]];
    return null;
  }
  canvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var r = canvas.getBoundingClientRect(), tm = tOf(ev.clientX - r.left), f = Math.exp(ev.deltaY * 0.0015);
    t0 = tm - (tm - t0) * f; t1 = tm + (t1 - tm) * f; clamp(); draw();
  }, { passive: false });
  canvas.addEventListener('mousedown', function (ev) { drag = { x: ev.clientX, t0: t0, t1: t1 }; });
  window.addEventListener('mouseup', function () { drag = null; });
  canvas.addEventListener('mousemove', function (ev) {
    if (drag) {
      var dt = (ev.clientX - drag.x) / (width() - LEFT - RIGHT) * (drag.t1 - drag.t0);
      t0 = drag.t0 - dt; t1 = drag.t1 - dt; clamp(); draw(); return;
    }
    var h = hit(ev);
    if (!h) { info.textContent = ''; return; }
    var s = h[1], name = data.kinds[s[2]];
    var mb = s[3] < 0 ? '' : ' micro-batch ' + s[3] + (s[4] >= 0 ? ' (F) / ' + s[4] + ' (B)' : '');
    info.textContent = 'rank ' + h[0] + ': ' + name + mb + ', ' + s[0].toFixed(1) + ' to ' + s[1].toFixed(1) +
      ' ms (' + (s[1] - s[0]).toFixed(2) + ' ms)';
  });
  canvas.addEventListener('dblclick', function () { t0 = 0; t1 = data.end; draw(); });
  root.querySelector('button').addEventListener('click', function () { t0 = 0; t1 = data.end; draw(); });
  window.addEventListener('resize', resize);
  resize();
})();
"""

_STYLE = """
#tl { border: 1px solid #d8dce5; border-radius: 6px; padding: 0.4rem 0; margin: 0.8rem 0; }
#tl canvas { display: block; cursor: grab; }
#tl .tl-bar { padding: 0 0.6rem 0.3rem; font-size: 0.85rem; color: #555d6e; }
#tl .tl-legend span { display: inline-block; margin-right: 0.8rem; }
#tl .tl-legend i { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.25rem; vertical-align: -1px; }
#tl .tl-info { font-variant-numeric: tabular-nums; color: #1d2330; }
"""


def timeline_html(run: TrainingRun) -> str:
    """The canvas, its data and its script, ready for :meth:`reports.document.Document.html_block`."""
    data = json.dumps(timeline_data(run), separators=(",", ":")).replace("</", "<\\/")
    legend = "".join(
        f'<span><i style="background:{c}"></i>{k}</span>' for k, c in zip(KINDS, COLOURS, strict=True) if k != "F&B"
    )
    return (
        f"<style>{_STYLE}</style>"
        '<div id="tl"><div class="tl-bar"><button type="button">reset zoom</button> '
        "wheel: zoom, drag: pan, double-click: reset. F&amp;B pairs: forward on top, backward below. "
        f'<div class="tl-legend">{legend}</div><div class="tl-info">&nbsp;</div></div>'
        '<canvas aria-label="per-rank timeline of the step"></canvas></div>'
        f'<script type="application/json" id="tl-data">{data}</script>'
        f"<script>{_SCRIPT}</script>"
    )
