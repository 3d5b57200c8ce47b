/* healthscore report: priority list, portfolio map and account pages, from inlined data.
   Data is only ever written with textContent / setAttribute (never innerHTML). */
(function () {
  "use strict";

  var L = JSON.parse(document.getElementById("hs-data").textContent);
  var F = {};
  L.fields.forEach(function (f, i) { F[f] = i; });
  var rows = L.accounts;
  var byId = new Map();
  rows.forEach(function (r, i) { byId.set(r[F.id], i); });
  var BANDS = ["red", "yellow", "green"];
  var COLOURS = { red: "#d64545", yellow: "#e0a100", green: "#2f9e5b" };
  var cur = L.currency || "";

  // --- small helpers -------------------------------------------------------------------------
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") el.textContent = String(v);
        else if (k === "style") el.style.cssText = v;
        else el.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  function svg(tag, attrs) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") el.textContent = String(attrs[k]); else el.setAttribute(k, String(attrs[k]));
    });
    return el;
  }
  function money(v) {
    if (v === null || v === undefined) return "–";
    var s = Math.abs(v), sign = v < 0 ? "-" : "";
    if (s >= 1e9) return sign + cur + short(s / 1e9) + "B";
    if (s >= 1e6) return sign + cur + short(s / 1e6) + "M";
    if (s >= 1e3) return sign + cur + short(s / 1e3) + "k";
    return sign + cur + Math.round(s).toLocaleString("en-US");
  }
  function short(v) { return v.toFixed(1).replace(/\.0$/, ""); }  // 100k, 1.5M
  function signed(v, digits) {
    if (v === null || v === undefined) return "–";
    var t = Number(v).toFixed(digits === undefined ? 1 : digits);
    return (v > 0 ? "+" : "") + t;
  }
  function dot(band) { return h("span", { "class": "dot " + band }); }
  function accountHref(id) { return "#/account/" + encodeURIComponent(id); }
  function label(name) { return String(name).replace(/_/g, " "); }

  // --- filters, sort, page -------------------------------------------------------------------
  var state = { q: "", segment: "", csm: "", band: "", key: "priority", dir: 1, page: 0 };
  var view = rows.map(function (_, i) { return i; });

  function fillSelect(id, values) {
    var select = document.getElementById(id);
    values.forEach(function (v) { select.appendChild(h("option", { value: v, text: v })); });
  }
  function distinct(field) {
    var seen = new Set();
    rows.forEach(function (r) { if (r[F[field]] !== null) seen.add(r[F[field]]); });
    return Array.from(seen).sort();
  }
  fillSelect("f-segment", distinct("segment"));
  fillSelect("f-csm", distinct("csm"));
  fillSelect("f-band", BANDS.filter(function (b) { return distinct("band").indexOf(b) >= 0; }));

  function compare(key, dir) {
    var k = F[key];
    return function (a, b) {
      var x = rows[a][k], y = rows[b][k];
      if (x === y) return rows[a][F.priority] - rows[b][F.priority];
      if (x === null) return 1;  // missing values last, whichever the direction
      if (y === null) return -1;
      if (typeof x === "string") return dir * x.localeCompare(y);
      return dir * (x - y);
    };
  }

  function apply() {
    var q = state.q.trim().toLowerCase();
    var out = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (state.segment && r[F.segment] !== state.segment) continue;
      if (state.csm && r[F.csm] !== state.csm) continue;
      if (state.band && r[F.band] !== state.band) continue;
      if (q && String(r[F.name] || "").toLowerCase().indexOf(q) < 0 &&
          String(r[F.id]).toLowerCase().indexOf(q) < 0) continue;
      out.push(i);
    }
    out.sort(compare(state.key, state.dir));
    view = out;
    state.page = 0;
    renderList();
    scheduleChart();
  }

  function renderList() {
    var per = L.page_rows;
    var pages = Math.max(1, Math.ceil(view.length / per));
    state.page = Math.min(state.page, pages - 1);
    var body = document.querySelector("#priority tbody");
    var frag = document.createDocumentFragment();
    view.slice(state.page * per, (state.page + 1) * per).forEach(function (i) {
      var r = rows[i];
      var trend = r[F.trend];
      frag.appendChild(h("tr", { "data-id": r[F.id] },
        h("td", { "class": "num", text: r[F.priority] }),
        h("td", null, h("a", { href: accountHref(r[F.id]), text: r[F.name] || r[F.id] })),
        h("td", { text: r[F.csm] || "–" }),
        h("td", { text: r[F.segment] || "–" }),
        h("td", { "class": "num health" }, dot(r[F.band]), r[F.health]),
        h("td", { "class": "num " + (trend > 0 ? "up" : trend < 0 ? "down" : ""),
                  text: trend === null ? "–" : signed(trend, 0) }),
        h("td", { "class": "num", text: money(r[F.at_risk]) }),
        h("td", { "class": "num", text: r[F.renewal_days] === null ? "–" : r[F.renewal_days] + " days" }),
        h("td", { "class": "num", text: r[F.renewal_arr] === null ? "–" : money(r[F.renewal_arr]) }),
        h("td", { "class": "num", text: r[F.growth] === null ? "–" : money(r[F.growth]) }),
        h("td", { "class": "driver", text: r[F.driver] || "–" }),
        h("td", null, r[F.play] || "–",
          r[F.play_note] ? h("span", { "class": "flag", text: r[F.play_note] }) : null),
        h("td", { "class": "num", text: r[F.saved] ? money(r[F.saved]) : "–" })));
    });
    body.replaceChildren(frag);
    document.getElementById("count").textContent =
      view.length.toLocaleString("en-US") + " of " + rows.length.toLocaleString("en-US") + " accounts";
    document.getElementById("page").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  var debounce = null;
  document.getElementById("search").addEventListener("input", function (e) {
    clearTimeout(debounce);
    var value = e.target.value;
    debounce = setTimeout(function () { state.q = value; apply(); }, 120);
  });
  [["f-segment", "segment"], ["f-csm", "csm"], ["f-band", "band"]].forEach(function (p) {
    document.getElementById(p[0]).addEventListener("change", function (e) {
      state[p[1]] = e.target.value; apply();
    });
  });
  document.querySelectorAll("#priority th[data-key]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      if (state.key === key) state.dir = -state.dir;
      else { state.key = key; state.dir = key === "priority" || key === "name" || key === "csm" ||
                                        key === "segment" || key === "health" ? 1 : -1; }
      document.querySelectorAll("#priority th[data-key]").forEach(function (o) {
        o.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", state.dir === 1 ? "ascending" : "descending");
      apply();
    });
  });
  document.getElementById("prev").addEventListener("click", function () { state.page--; renderList(); });
  document.getElementById("next").addEventListener("click", function () { state.page++; renderList(); });
  document.querySelector("#priority tbody").addEventListener("click", function (e) {
    if (e.target.closest("a")) return;
    var tr = e.target.closest("tr[data-id]");
    if (tr) location.hash = accountHref(tr.getAttribute("data-id"));
  });

  // --- portfolio map (canvas: 100,000 circles draw in a few tens of ms) -------------------------
  var canvas = document.getElementById("bubbles");
  var tip = document.getElementById("tip");
  var points = [];  // [x, y, r, row] in CSS pixels, for hit tests
  var pending = false;
  var arrMin = Infinity, arrMax = 0;
  rows.forEach(function (r) {
    var a = r[F.arr];
    if (a > 0) { arrMin = Math.min(arrMin, a); arrMax = Math.max(arrMax, a); }
  });
  if (!isFinite(arrMin)) { arrMin = 1; arrMax = 10; }
  if (arrMax <= arrMin) arrMax = arrMin * 10;

  function scheduleChart() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; drawChart(); });
  }
  function drawChart() {
    var width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    var pad = { l: 78, r: 16, t: 14, b: 34 };
    var lo = Math.log10(arrMin), hi = Math.log10(arrMax);
    function x(health) { return pad.l + (health / 100) * (width - pad.l - pad.r); }
    function y(arr) {
      var v = Math.log10(Math.max(arr, arrMin));
      return height - pad.b - ((v - lo) / (hi - lo)) * (height - pad.t - pad.b);
    }
    // band zones and axes
    var cuts = [0, L.bands.red_below, L.bands.yellow_below, 100];
    BANDS.forEach(function (b, i) {
      ctx.fillStyle = COLOURS[b] + "12";
      ctx.fillRect(x(cuts[i]), pad.t, x(cuts[i + 1]) - x(cuts[i]), height - pad.t - pad.b);
    });
    ctx.strokeStyle = "#c5cbd3"; ctx.fillStyle = "#6b7380"; ctx.font = "11px system-ui, sans-serif";
    ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, height - pad.b);
    ctx.lineTo(width - pad.r, height - pad.b); ctx.stroke();
    for (var t = 0; t <= 100; t += 10) ctx.fillText(String(t), x(t) - 6, height - pad.b + 14);
    ctx.fillText("health →", width - pad.r - 50, height - 6);
    ctx.textAlign = "right";  // tick labels end at the axis, clear of its rotated name
    for (var e = Math.ceil(lo); e <= Math.floor(hi); e++) {
      ctx.fillText(money(Math.pow(10, e)), pad.l - 7, y(Math.pow(10, e)) + 4);
      ctx.beginPath(); ctx.moveTo(pad.l - 4, y(Math.pow(10, e))); ctx.lineTo(pad.l, y(Math.pow(10, e))); ctx.stroke();
    }
    ctx.textAlign = "center";
    ctx.save(); ctx.translate(12, (pad.t + height - pad.b) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("ARR (log scale) →", 0, 0); ctx.restore();
    ctx.textAlign = "start";
    // circles: largest first so small accounts stay visible on top
    var order = view.slice().sort(function (a, b) { return rows[b][F.arr] - rows[a][F.arr]; });
    var rmax = view.length > 20000 ? 7 : view.length > 2000 ? 10 : 16;
    points = new Array(order.length);
    ctx.globalAlpha = view.length > 20000 ? 0.45 : 0.7;
    ctx.lineWidth = 0.6;
    for (var k = 0; k < order.length; k++) {
      var r = rows[order[k]];
      var px = x(r[F.health]), py = y(r[F.arr]);
      var rad = 1.5 + rmax * Math.sqrt(Math.max(r[F.arr], 0) / arrMax);
      ctx.fillStyle = COLOURS[r[F.band]] || "#888";
      ctx.beginPath(); ctx.arc(px, py, rad, 0, 2 * Math.PI); ctx.fill();
      points[k] = [px, py, rad, order[k]];
    }
    ctx.globalAlpha = 1;
  }
  function hit(event) {
    var box = canvas.getBoundingClientRect();
    var mx = event.clientX - box.left, my = event.clientY - box.top;
    for (var k = points.length - 1; k >= 0; k--) {  // topmost first
      var p = points[k], dx = p[0] - mx, dy = p[1] - my;
      if (dx * dx + dy * dy <= Math.max(p[2], 4) * Math.max(p[2], 4)) return { p: p, mx: mx, my: my };
    }
    return null;
  }
  canvas.addEventListener("mousemove", function (event) {
    var found = hit(event);
    if (!found) { tip.hidden = true; return; }
    var r = rows[found.p[3]];
    tip.replaceChildren(h("b", { text: r[F.name] || r[F.id] }), " · health " + r[F.health] +
      " · ARR " + money(r[F.arr]) + " · at risk " + money(r[F.at_risk]));
    tip.style.left = Math.min(found.mx + 12, canvas.clientWidth - 280) + "px";
    tip.style.top = (found.my + 12) + "px";
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  canvas.addEventListener("click", function (event) {
    var found = hit(event);
    if (found) location.hash = accountHref(rows[found.p[3]][F.id]);
  });
  window.addEventListener("resize", scheduleChart);

  // --- account pages: data loaded by a script element per file of accounts -----------------------------
  var parts = {}, waiting = {};
  window.HS = {
    part: function (n, data) {
      parts[n] = data;
      (waiting[n] || []).forEach(function (f) { f(); });
      delete waiting[n];
    }
  };
  function withPart(n, done, failed) {
    if (parts[n]) { done(parts[n]); return; }
    if (waiting[n]) { waiting[n].push(function () { done(parts[n]); }); return; }
    waiting[n] = [function () { done(parts[n]); }];
    var s = document.createElement("script");
    s.src = "accounts/part-" + String(n).padStart(4, "0") + ".js";
    s.onerror = function () { delete waiting[n]; failed(s.src); };
    document.head.appendChild(s);
  }

  var showing = null;  // the account asked for last: a late file never draws over another
  function showAccount(id) {
    showing = id;
    var section = document.getElementById("account");
    var i = byId.get(id);
    if (i === undefined) {
      section.replaceChildren(h("p", { "class": "note", text: "No account " + id + " in this run." }),
        h("a", { href: "#/", text: "← Portfolio" }));
      return;
    }
    section.replaceChildren(h("p", { "class": "muted", text: "Loading…" }));
    withPart(Math.floor(i / L.chunk), function (data) {
      if (showing !== id || section.hidden) return;
      renderAccount(section, rows[i], data[i % L.chunk]);
    }, function (src) {
      if (showing !== id) return;
      section.replaceChildren(h("p", { "class": "note", text: "Could not load " + src +
        " (keep the accounts/ folder beside index.html)." }));
    });
  }

  function bars(items, opts) {
    // items: [label, value, kind]. A "total" bar runs from 0 to its value; with opts.running
    // every other bar starts where the previous one ended (a waterfall), else from 0.
    var run = 0;
    var segments = items.map(function (it) {
      if (it[2] === "heading") return { label: it[0], cls: "heading" };
      var from = it[2] === "total" || !opts.running ? 0 : run;
      var to = it[2] === "total" ? it[1] : from + it[1];
      run = to;
      return { label: it[0], value: it[1], from: from, to: to,
               cls: it[2] === "total" ? "total" : it[1] < 0 ? "neg" : "pos" };
    });
    var drawn = segments.filter(function (g) { return g.cls !== "heading"; });
    var lo = Math.min.apply(null, [0].concat(drawn.map(function (g) { return Math.min(g.from, g.to); })));
    var hi = Math.max.apply(null, [0].concat(drawn.map(function (g) { return Math.max(g.from, g.to); })));
    var span = (hi - lo) || 1;
    function pos(v) { return (100 * (v - lo) / span).toFixed(2) + "%"; }
    var grid = h("div", { "class": "bars" });
    segments.forEach(function (g) {
      if (g.cls === "heading") {  // a row of words across the chart: a group's name
        grid.appendChild(h("div", { "class": "lbl heading", text: g.label }));
        return;
      }
      grid.appendChild(h("div", { "class": "lbl", text: g.label }));
      grid.appendChild(h("div", { "class": "track" },
        h("div", { "class": "axis", style: "left:" + pos(0) }),
        h("div", { "class": "bar " + g.cls, style: "left:" + pos(Math.min(g.from, g.to)) + ";width:" +
          Math.max(0.4, 100 * Math.abs(g.to - g.from) / span).toFixed(2) + "%" })));
      grid.appendChild(h("div", { "class": "val",
        text: g.cls === "total" ? String(Math.round(g.value)) : signed(g.value) }));
    });
    return grid;
  }

  function sparkline(history) {
    var known = history.map(function (v, k) { return [k, v]; }).filter(function (p) { return p[1] !== null; });
    if (known.length < 2) return h("p", { "class": "muted", text: known.length ? "First run for this account: the trend starts with the next run." : "No history." });
    var w = 520, ht = 120, pad = 24, left = 56;
    var box = svg("svg", { "class": "spark", viewBox: "0 0 " + w + " " + ht, role: "img", "aria-label": "health over past runs" });
    function x(k) { return left + k * (w - left - pad) / Math.max(1, history.length - 1); }
    function y(v) { return ht - 18 - (v / 100) * (ht - 30); }
    // the y-axis: health 0-100, ticks at the band cuts
    box.appendChild(svg("line", { x1: left - 12, x2: left - 12, y1: y(0), y2: y(100), stroke: "#c5cbd3" }));
    box.appendChild(svg("text", { x: 12, y: y(50), text: "health", "text-anchor": "middle",
      transform: "rotate(-90 12 " + y(50) + ")" }));
    [0, L.bands.red_below, L.bands.yellow_below, 100].forEach(function (c) {
      box.appendChild(svg("text", { x: left - 16, y: y(c) + 4, text: c, "text-anchor": "end" }));
      if (c > 0 && c < 100) {
        box.appendChild(svg("line", { x1: left - 12, x2: w - pad, y1: y(c), y2: y(c), stroke: "#e3e6ea", "stroke-dasharray": "3 3" }));
      }
    });
    box.appendChild(svg("polyline", { fill: "none", stroke: "#2d5fd3", "stroke-width": 2,
      points: known.map(function (p) { return x(p[0]) + "," + y(p[1]); }).join(" ") }));
    known.forEach(function (p) {
      box.appendChild(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 3.5, fill: "#2d5fd3" }));
      box.appendChild(svg("text", { x: x(p[0]) - 6, y: y(p[1]) - 7, text: p[1] }));
      box.appendChild(svg("text", { x: x(p[0]) - 24, y: ht - 3, text: L.runs[p[0]].slice(2) }));
    });
    return box;
  }

  function renderAccount(section, r, d) {
    var band = r[F.band];
    var head = h("div", { "class": "acct-head" },
      h("div", null,
        h("a", { href: "#/", text: "← Portfolio" }),
        h("h2", { id: "account-name", text: r[F.name] || r[F.id] }),
        h("div", { "class": "muted", text: [r[F.id], r[F.segment], "CSM " + (r[F.csm] || "–"),
          "ARR " + money(r[F.arr]), r[F.renewal_days] === null ? null : "renewal in " + r[F.renewal_days] + " days",
          "priority #" + r[F.priority], "model v" + d.version].filter(Boolean).join(" · ") })),
      h("div", null,
        h("div", { "class": "big " + band, id: "account-health", text: r[F.health] }),
        h("div", null, dot(band), band + " · interval " + d.interval[0] + "–" + d.interval[1])),
      h("div", null,
        h("div", { text: "Win probability " + d.p[1].toFixed(1) + "% (" + d.p[0].toFixed(1) + "–" + d.p[2].toFixed(1) + "%)" }),
        h("div", { text: "ARR at risk " + money(r[F.at_risk]) }),
        r[F.renewal_arr] === null ? null : h("div", { text: "Expected renewal ARR " +
          money(r[F.renewal_arr]) + " (today " + money(r[F.arr]) + "), expected growth " +
          money(r[F.growth]) })));

    var changed;
    if (d.change) {
      var c = d.change;
      changed = h("div", null,
        h("p", null, "Since " + c.since + ": health " + c.before + " → " + r[F.health] + " ",
          h("b", { "class": c.delta > 0 ? "up" : c.delta < 0 ? "down" : "", text: "(" + signed(c.delta, 0) + ")" }),
          c.band_before && c.band_before !== band ? " · band " + c.band_before + " → " + band : ""),
        c.fell[0] && c.fell[1] < 0 ? h("p", null, "Most fell: " + c.fell[0] + " (" + signed(c.fell[1]) + " pts)") : null,
        c.rose[0] && c.rose[1] > 0 ? h("p", null, "Most rose: " + c.rose[0] + " (" + signed(c.rose[1]) + " pts)") : null,
        bars(Object.keys(c.components).filter(function (k) { return Math.abs(c.components[k]) >= 0.05; })
          .map(function (k) { return [label(k), c.components[k]]; }), {}));
    } else {
      changed = h("p", { "class": "muted", text: "No previous run for this account." });
    }

    var drivers = d.drivers.slice();
    var shown = drivers.reduce(function (s, x) { return s + x[1]; }, 0);
    var other = r[F.health] - d.base - shown;
    // what the team can change first; what the account is (its contract, size, segment) apart
    var acting = drivers.filter(function (x) { return x[3] !== false; });
    var context = drivers.filter(function (x) { return x[3] === false; });
    var steps = [["Portfolio base", d.base, "total"]]
      .concat(acting.map(function (x) { return [x[0], x[1]]; }))
      .concat(context.length ? [["What the account is (not for the team to change)", 0, "heading"]] : [])
      .concat(context.map(function (x) { return [x[0], x[1]]; }))
      .concat(Math.abs(other) >= 0.05 ? [["All other factors", other]] : [])
      .concat([["Health", r[F.health], "total"]]);
    var waterfall = h("div", { id: "waterfall" }, bars(steps, { running: true }));

    var comps = bars(d.components.slice().sort(function (a, b) { return a[1] - b[1]; })
      .map(function (x) { return [label(x[0]), x[1]]; }), {});

    section.replaceChildren(head,
      h("div", { "class": "grid2" },
        h("div", { "class": "panel" }, h("h3", { text: "Why: the drivers, in points of health" }),
          h("p", { "class": "muted", text: "From the portfolio's base health, each driver adds or takes points; they sum to this account's health." }),
          waterfall),
        h("div", { "class": "panel" }, h("h3", { text: "Components" }), comps)),
      h("div", { "class": "grid2" },
        h("div", { "class": "panel" }, h("h3", { text: "History" }), sparkline(d.history)),
        h("div", { "class": "panel" }, h("h3", { text: "What changed since last time" }), changed)),
      h("div", { "class": "panel" }, h("h3", { text: "Recommended plays" }), plays(d.plays)),
      d.grow && d.grow.length ? h("div", { "class": "panel" },
        h("h3", { text: "Why it might grow at renewal" }),
        h("ul", null, d.grow.map(function (t) { return h("li", { text: t }); }))) : null,
      h("div", { "class": "grid2" },
        h("div", { "class": "panel" }, h("h3", { text: "Stakeholder footprint" }), footprint(d.footprint)),
        h("div", { "class": "panel" }, h("h3", { text: "Recent activity" }), activity(d.activity))));
    window.scrollTo(0, 0);
  }

  function plays(p) {
    if (!p) return h("p", { "class": "muted", text: "No plan run for this date (healthscore plan)." });
    var arm = {
      plan: "Funded this period: " + p.recommended,
      holdout_bau: "Held out this period: business as usual, so the plays' uplift can be measured.",
      holdout_random: "Held out this period: a randomised play (" + p.action + "), so the plays' uplift can be measured.",
      ineligible: "Not funded within this period's capacity."
    }[p.arm] || p.arm;
    if (p.none) {
      return h("div", null, h("p", { text: "No play is expected to save more ARR than it costs." }),
        kinds(p.kinds));
    }
    return h("div", null,
      h("p", null, h("b", { text: arm })),
      h("table", { "class": "list compact" },
        h("thead", null, h("tr", null, ["Plan", "Lift (pts of win probability)", "Expected ARR saved", "Cost", "CSM / exec hours", "Net value"].map(function (t, k) {
          return h("th", { "class": k ? "num" : "", text: t });
        }))),
        h("tbody", null,
          h("tr", null,
            h("td", null, p.best, p.extrapolated ? h("span", { "class": "flag", title: "outside the logged decisions", text: "extrapolated" }) : null),
            h("td", { "class": "num", text: signed(p.lift[0]) + " (" + signed(p.lift[1]) + " to " + signed(p.lift[2]) + ")" }),
            h("td", { "class": "num", text: money(p.saved[0]) + " (" + money(p.saved[1]) + " to " + money(p.saved[2]) + ")" }),
            h("td", { "class": "num", text: money(p.cost) + (p.given > 0 ? " + " + money(p.given) + " of the renewal given away" : "") }),
            h("td", { "class": "num", text: p.hours[0] + " / " + p.hours[1] }),
            h("td", { "class": "num", text: money(p.net) })),
          p.runners_up.map(function (u) {
            return h("tr", { "class": "muted" }, h("td", { text: "or: " + u[0] }), h("td"),
              h("td", { "class": "num", text: money(u[1]) }), h("td"), h("td"), h("td"));
          }))),
      kinds(p.kinds));
  }
  function kinds(list) {
    if (!list.length) return null;
    return h("details", null, h("summary", { text: "Each play alone" }),
      h("table", { "class": "list compact" },
        h("thead", null, h("tr", null, h("th", { text: "Play" }), h("th", { "class": "num", text: "Effect (pts)" }), h("th", { "class": "num", text: "95% interval" }))),
        h("tbody", null, list.map(function (k) {
          return h("tr", null, h("td", null, label(k[0]), k[4] ? h("span", { "class": "flag", text: "extrapolated" }) : null),
            h("td", { "class": "num", text: signed(k[1], 2) }),
            h("td", { "class": "num", text: signed(k[2], 2) + " to " + signed(k[3], 2) }));
        }))));
  }
  function footprint(known) {
    if (!L.personas.length) return h("p", { "class": "muted", text: "No contacts table." });
    return h("div", null,
      h("div", { "class": "chips" }, L.personas.map(function (p, k) {
        var c = known[k] || [0, 0];
        return h("span", { "class": "chip" + (c[0] ? "" : " none"), "data-persona": p },
          label(p) + ": " + (c[0] ? c[0] : "none known") + (c[1] ? " (" + c[1] + " left recently)" : ""));
      })));
  }
  function activity(items) {
    if (!items.length) return h("p", { "class": "muted", text: "No recorded activity in the window." });
    return h("table", { "class": "list compact" }, h("tbody", null, items.map(function (a) {
      return h("tr", null, h("td", { text: a[0] }), h("td", { text: a[1] }), h("td", { text: a[2] || "" }), h("td", { text: a[3] || "" }));
    })));
  }

  // --- routing ---------------------------------------------------------------------------------
  function route() {
    var hash = location.hash || "#/";
    var name = "portfolio";
    if (hash.indexOf("#/account/") === 0) name = "account";
    else if (hash === "#/model") name = "model";
    document.querySelectorAll("[data-view]").forEach(function (s) {
      s.hidden = s.getAttribute("data-view") !== name;
    });
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-nav") === name);
    });
    if (name === "account") {
      var raw = hash.slice("#/account/".length), id = raw;
      try { id = decodeURIComponent(raw); } catch (e) { id = raw; }  // a hand-typed "50%off"
      showAccount(id);
    } else {
      showing = null;
    }
    if (name === "portfolio") scheduleChart();
  }
  window.addEventListener("hashchange", route);
  apply();
  route();
  document.body.setAttribute("data-ready", "1");
})();
