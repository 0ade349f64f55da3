/* hybridshop dashboards: renders one LookML dashboard (newspaper layout) from its JSON.
 *
 * The same script runs on the live page (served by `hybridshop dashboards serve`) and inside
 * the self-contained HTML export (no server: no polling, CSV built in the page).
 * Every string from the warehouse or the project is inserted with textContent, never as
 * HTML; charts are Vega-Lite (SVG), whose tooltips vega-embed escapes.
 */
(function () {
  "use strict";

  var boot = document.getElementById("dashboard-data");
  var data = JSON.parse(boot.textContent);
  var exported = document.body.classList.contains("exported");
  var POLL_MS = 2000;
  var views = {}; // tile name -> vega-embed result
  var rendered = {}; // tile name -> signature of what is drawn
  var tileTimers = [];
  var lastState = data.warehouse || null;
  var fetching = null;
  var pollFailures = 0;

  // ---- small DOM helpers ------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") node.textContent = attrs[k];
        else if (k === "className") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function fmtInt(n) {
    return Number(n).toLocaleString("en-US");
  }
  function ago(ms) {
    if (ms === null || ms === undefined) return "no data yet";
    var s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  function clock(ms) {
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  // ---- header: last updated and freshness ----------------------------------------------
  function renderStatus() {
    var updated = document.getElementById("updated");
    updated.textContent =
      (exported ? "Data as of " : "Updated ") + clock(data.generated_at_ms) + " (" + ago(data.generated_at_ms) + ")";
    if (data.as_of_ms) updated.textContent += " · relative dates as of " + clock(data.as_of_ms);
    updated.title = "Queries took " + data.took_ms + " ms";
    var list = document.getElementById("freshness");
    list.textContent = "";
    var st = lastState || {};
    if (st.error) {
      list.appendChild(el("li", { className: "chip warn", text: st.error }));
      return;
    }
    (st.tables || []).forEach(function (t) {
      var chip = el("li", { className: "chip", "data-table": t.table }, [
        el("strong", { text: t.table }),
        " · " + fmtInt(t.rows) + (t.rows === 1 ? " row" : " rows") + " · newest change " + ago(t.latest_source_ms),
      ]);
      chip.title = t.latest_source_ms ? "Latest source commit: " + clock(t.latest_source_ms) : "empty table";
      list.appendChild(chip);
    });
    if (st.last_change_ms) {
      list.appendChild(el("li", { className: "chip muted", text: "last change applied " + ago(st.last_change_ms) }));
    }
  }

  // ---- filters (reflected in the URL) -----------------------------------------------------
  var DATE_PRESETS = [
    ["", "Any time"],
    ["today", "Today"],
    ["24 hours", "Last 24 hours"],
    ["7 days", "Last 7 days"],
    ["30 days", "Last 30 days"],
    ["90 days", "Last 90 days"],
    ["180 days", "Last 180 days"],
    ["365 days", "Last 365 days"],
    ["this month", "This month"],
    ["this year", "This year"],
  ];
  var RANGE_RE = /^(\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})$/;

  function filterValues() {
    var out = {};
    data.dashboard.filters.forEach(function (f) {
      out[f.name] = f.value;
    });
    return out;
  }
  function queryString(values) {
    var params = new URLSearchParams();
    data.dashboard.filters.forEach(function (f) {
      var v = values[f.name];
      if (v !== (f.default_value || "")) params.set(f.name, v);
    });
    var q = params.toString();
    return q ? "?" + q : "";
  }
  function apiQuery(values) {
    var params = new URLSearchParams();
    data.dashboard.filters.forEach(function (f) {
      params.set(f.name, values[f.name]);
    });
    return "?" + params.toString();
  }
  function isDateFilter(f) {
    return f.type === "date_filter" || /date|time/.test(f.field || "") || f.ui === "relative_timeframes";
  }

  function renderFilters() {
    var form = document.getElementById("filters");
    form.textContent = "";
    if (!data.dashboard.filters.length) {
      form.hidden = true;
      return;
    }
    data.dashboard.filters.forEach(function (f) {
      var id = "filter-" + f.name;
      var box = el("div", { className: "filter", "data-filter": f.name });
      box.appendChild(el("label", { for: id, text: f.title }));
      var controls = el("div", { className: "controls" });
      box.appendChild(controls);
      var expr = el("input", {
        id: id,
        name: f.name,
        type: "text",
        className: "expr",
        value: f.value,
        placeholder: "is any value",
        "aria-label": f.title + " (Looker filter expression)",
        "data-testid": "filter-" + f.name,
      });
      if (isDateFilter(f)) {
        var preset = el("select", { className: "preset", "aria-label": f.title + " preset" });
        var known = false;
        DATE_PRESETS.forEach(function (p) {
          var o = el("option", { value: p[0], text: p[1] });
          if (p[0] === f.value) {
            o.selected = true;
            known = true;
          }
          preset.appendChild(o);
        });
        var custom = el("option", { value: "__range", text: "Between dates…" });
        preset.appendChild(custom);
        var m = RANGE_RE.exec(f.value || "");
        var from = el("input", { type: "date", className: "from", "aria-label": f.title + " from" });
        var to = el("input", { type: "date", className: "to", "aria-label": f.title + " to (exclusive)" });
        var range = el("span", { className: "range" }, [from, el("span", { text: "to" }), to]);
        if (m) {
          from.value = m[1];
          to.value = m[2];
        }
        if (m) custom.selected = true;
        else if (!known) {
          // an expression with no preset (e.g. "3 days ago for 2 days"): offered as itself
          var own = el("option", { value: f.value, text: f.value, selected: "" });
          preset.insertBefore(own, custom);
        }
        range.hidden = !m;
        preset.addEventListener("change", function () {
          if (preset.value === "__range") {
            range.hidden = false;
            return;
          }
          range.hidden = true;
          expr.value = preset.value;
          apply();
        });
        function fromRange() {
          if (from.value && to.value) {
            expr.value = from.value + " to " + to.value;
            apply();
          }
        }
        from.addEventListener("change", fromRange);
        to.addEventListener("change", fromRange);
        controls.appendChild(preset);
        controls.appendChild(range);
      } else {
        var listId = id + "-values";
        expr.setAttribute("list", listId);
        var dl = el("datalist", { id: listId });
        suggestions(f).forEach(function (v) {
          dl.appendChild(el("option", { value: v }));
        });
        controls.appendChild(dl);
      }
      expr.addEventListener("change", apply);
      controls.appendChild(expr);
      if (exported) {
        box.querySelectorAll("input, select").forEach(function (n) {
          n.disabled = true;
        });
      }
      form.appendChild(box);
    });
    if (exported) {
      form.appendChild(el("p", { className: "note", text: "Filters as exported. Serve the dashboards to change them." }));
      return;
    }
    var reset = el("button", { type: "button", className: "reset", text: "Reset filters", "data-testid": "reset-filters" });
    reset.addEventListener("click", function () {
      data.dashboard.filters.forEach(function (f) {
        f.value = f.default_value || "";
      });
      renderFilters();
      apply();
    });
    form.appendChild(reset);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      apply();
    });
  }

  function suggestions(f) {
    // the field's values in the warehouse, else those seen in the tiles
    if (f.suggestions && f.suggestions.length) return f.suggestions;
    var seen = {};
    data.tiles.forEach(function (t) {
      (t.columns || []).forEach(function (c) {
        if (c.name === f.field) {
          (t.text || []).forEach(function (r) {
            if (r[c.key] && r[c.key] !== "∅") seen[r[c.key]] = true;
          });
        }
      });
    });
    return Object.keys(seen).sort();
  }

  function apply() {
    var values = {};
    document.querySelectorAll("#filters .filter").forEach(function (box) {
      values[box.getAttribute("data-filter")] = box.querySelector("input.expr").value.trim();
    });
    data.dashboard.filters.forEach(function (f) {
      f.value = values[f.name];
    });
    if (!exported) {
      history.pushState(values, "", location.pathname + queryString(values));
      refetch(true);
    }
  }

  // a filter whose expression the compiler refused is marked, with the reason as its title
  function markBadFilters() {
    data.dashboard.filters.forEach(function (f) {
      var input = document.getElementById("filter-" + f.name);
      if (!input) return;
      var needle = "(dashboard filter '" + f.name + "')";
      var bad = null;
      data.tiles.forEach(function (t) {
        t.errors.forEach(function (e) {
          if (!bad && e.indexOf(needle) >= 0) bad = e;
        });
      });
      input.setAttribute("aria-invalid", bad ? "true" : "false");
      input.title = bad || "";
    });
  }

  // ---- tiles ----------------------------------------------------------------------------
  function signature(t) {
    return JSON.stringify([t.rows, t.spec, t.errors, t.title, t.layout, t.body_text]);
  }

  function renderGrid() {
    var grid = document.getElementById("grid");
    var keep = {};
    data.tiles.forEach(function (t) {
      keep[t.name] = true;
      var card = document.getElementById("tile-" + t.name);
      if (!card) {
        card = el("article", { id: "tile-" + t.name, className: "tile", "data-tile": t.name, "data-testid": "tile" });
        grid.appendChild(card);
      }
      card.style.gridColumn = t.layout.col + 1 + " / span " + t.layout.width;
      card.style.gridRow = t.layout.row + 1 + " / span " + t.layout.height;
      card.style.setProperty("--rows", t.layout.height);
      var sig = signature(t);
      if (rendered[t.name] === sig) return;
      rendered[t.name] = sig;
      drawTile(card, t);
      card.classList.remove("flash");
      void card.offsetWidth;
      if (rendered.__initialised) card.classList.add("flash");
    });
    Array.prototype.slice.call(grid.children).forEach(function (c) {
      if (!keep[c.getAttribute("data-tile")]) grid.removeChild(c);
    });
    rendered.__initialised = true;
  }

  function drawTile(card, t) {
    if (views[t.name]) {
      views[t.name].finalize();
      delete views[t.name];
    }
    card.textContent = "";
    card.className = "tile kind-" + t.kind + (t.errors.length ? " has-error" : "");
    if (t.kind !== "text" || (t.title && t.title !== t.title_text)) {
      var head = el("header", { className: "tile-head" }, [el("h2", { className: "tile-title", text: t.title || "" })]);
      if (t.kind !== "text") {
        var tools = el("div", { className: "tile-tools" });
        var sqlBtn = el("button", { type: "button", text: "SQL", title: "Show SQL", "data-testid": "show-sql" });
        sqlBtn.addEventListener("click", function () {
          showSql(t);
        });
        tools.appendChild(sqlBtn);
        if (!t.errors.length) {
          tools.appendChild(csvLink(t));
        }
        head.appendChild(tools);
      }
      card.appendChild(head);
    }
    var body = el("div", { className: "tile-body" });
    card.appendChild(body);
    if (t.errors.length) {
      var box = el("div", { className: "tile-error", role: "alert", "data-testid": "tile-error" });
      t.errors.forEach(function (e) {
        box.appendChild(el("pre", { text: e }));
      });
      body.appendChild(box);
      return;
    }
    if (t.note_text) body.appendChild(el("p", { className: "note", text: t.note_text }));
    if (t.kind === "chart") drawChart(body, t);
    else if (t.kind === "single_value") drawSingle(body, t);
    else if (t.kind === "table") drawTable(body, t);
    else if (t.kind === "text") drawText(body, t);
    if (t.truncated) body.appendChild(el("p", { className: "note", text: "Showing the first " + t.rows.length + " rows." }));
  }

  function drawChart(body, t) {
    if (!t.rows.length) {
      body.appendChild(el("p", { className: "empty", text: "No results" }));
      return;
    }
    var holder = el("div", { className: "chart", "data-testid": "chart" });
    body.appendChild(holder);
    window
      .vegaEmbed(holder, t.spec, { actions: false, renderer: "svg", tooltip: { theme: "light" } })
      .then(function (result) {
        views[t.name] = result;
        holder.setAttribute("data-rendered", "1");
      })
      .catch(function (err) {
        holder.textContent = "";
        holder.appendChild(el("pre", { className: "tile-error", text: "chart failed: " + err }));
      });
  }

  function firstMeasure(t) {
    for (var i = 0; i < t.columns.length; i++) if (t.columns[i].category === "measure") return t.columns[i];
    return t.columns[0];
  }

  function drawSingle(body, t) {
    var col = firstMeasure(t);
    var value = t.text.length && col ? t.text[0][col.key] : "–";
    body.appendChild(el("div", { className: "single-value", text: value, "data-testid": "single-value" }));
    if (col && col.label !== t.title) body.appendChild(el("div", { className: "single-label", text: col.label }));
  }

  function drawTable(body, t) {
    var wrap = el("div", { className: "table-wrap" });
    var table = el("table", { className: "grid-table", "data-testid": "table" });
    var tr = el("tr");
    tr.appendChild(el("th", { className: "rownum", text: "" }));
    var numeric = {};
    t.columns.forEach(function (c) {
      numeric[c.key] = t.rows.some(function (r) { return typeof r[c.key] === "number"; });
      tr.appendChild(el("th", { className: c.category + (numeric[c.key] ? " num" : ""), text: c.label, scope: "col" }));
    });
    table.appendChild(el("thead", null, [tr]));
    var tbody = el("tbody");
    t.text.forEach(function (r, i) {
      var row = el("tr");
      row.appendChild(el("td", { className: "rownum", text: String(i + 1) }));
      t.columns.forEach(function (c) {
        row.appendChild(el("td", { className: c.category + (numeric[c.key] ? " num" : ""), text: r[c.key] }));
      });
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
    if (!t.text.length) body.appendChild(el("p", { className: "empty", text: "No results" }));
    wrap.appendChild(table);
    body.appendChild(wrap);
  }

  // A safe subset of Markdown (headings, lists, bold, code, paragraphs), built as DOM nodes.
  function inline(text) {
    var frag = document.createDocumentFragment();
    var re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      var tok = m[0];
      if (tok.charAt(0) === "*") frag.appendChild(el("strong", { text: tok.slice(2, -2) }));
      else frag.appendChild(el("code", { text: tok.slice(1, -1) }));
      last = m.index + tok.length;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }
  function drawText(body, t) {
    var box = el("div", { className: "text-tile" });
    if (t.title_text) box.appendChild(el("h3", { className: "text-title", text: t.title_text }));
    if (t.subtitle_text) box.appendChild(el("p", { className: "text-subtitle", text: t.subtitle_text }));
    var list = null;
    var para = null;
    (t.body_text || "").split(/\n/).forEach(function (line) {
      var s = line.trim();
      if (s && !/^(#{1,3} |[-*] )/.test(s)) {
        // lines of one paragraph are joined, as Markdown does
        if (para) para.appendChild(document.createTextNode(" "));
        else {
          para = el("p");
          box.appendChild(para);
          list = null;
        }
        para.appendChild(inline(s));
        return;
      }
      para = null;
      if (/^[-*] /.test(s)) {
        if (!list) {
          list = el("ul");
          box.appendChild(list);
        }
        var li = el("li");
        li.appendChild(inline(s.slice(2)));
        list.appendChild(li);
        return;
      }
      list = null;
      if (!s) return;
      var h = /^(#{1,3}) (.*)$/.exec(s);
      var node = el("h" + (h[1].length + 2));
      node.appendChild(inline(h[2]));
      box.appendChild(node);
    });
    body.appendChild(box);
  }

  // ---- SQL and CSV --------------------------------------------------------------------------
  function showSql(t) {
    document.getElementById("sql-title").textContent = t.title || t.name;
    document.getElementById("sql-bigquery").textContent = (t.sql && t.sql.bigquery) || "(no SQL: the element did not compile)";
    document.getElementById("sql-duckdb").textContent = (t.sql && t.sql.duckdb) || "(no SQL)";
    var dlg = document.getElementById("sql-dialog");
    if (dlg.showModal) dlg.showModal();
    else dlg.setAttribute("open", "");
  }

  function csvCell(v) {
    if (v === null || v === undefined) return "";
    var s = String(v);
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function csvLink(t) {
    var name = data.dashboard.name + "-" + t.name + ".csv";
    var a = el("a", { className: "button", text: "CSV", title: "Download CSV", download: name, "data-testid": "download-csv" });
    if (!exported) {
      a.href = "/api/dashboards/" + encodeURIComponent(data.dashboard.name) + "/tiles/" + encodeURIComponent(t.name) + ".csv" + apiQuery(filterValues());
      return a;
    }
    a.href = "#";
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var lines = [t.columns.map(function (c) { return csvCell(c.label); }).join(",")];
      t.rows.forEach(function (r) {
        lines.push(t.columns.map(function (c) { return csvCell(r[c.key]); }).join(","));
      });
      var url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
      var tmp = el("a", { href: url, download: name });
      document.body.appendChild(tmp);
      tmp.click();
      document.body.removeChild(tmp);
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
    return a;
  }

  // ---- live refresh -----------------------------------------------------------------------
  function setLive(ok, text) {
    var dot = document.getElementById("live");
    dot.classList.toggle("off", !ok);
    dot.textContent = text;
  }

  function refetch(force) {
    if (fetching && !force) return fetching;
    var url = "/api/dashboards/" + encodeURIComponent(data.dashboard.name) + apiQuery(filterValues());
    var p = fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (fresh) {
        var keepFilters = data.dashboard.filters;
        data = fresh;
        data.dashboard.filters = keepFilters;
        lastState = fresh.warehouse;
        renderGrid();
        renderStatus();
        markBadFilters();
        document.body.setAttribute("data-version", (lastState && lastState.version) || "");
      })
      .catch(function (err) {
        setLive(false, "Offline: " + err.message);
      })
      .then(function () {
        if (fetching === p) fetching = null;
      });
    fetching = p;
    return p;
  }

  function poll() {
    fetch("/api/state", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (st) {
        pollFailures = 0;
        var changed = !data.warehouse || st.version !== data.warehouse.version;
        lastState = st;
        setLive(!st.error, st.error ? "Waiting for the warehouse" : "Live");
        if (changed) refetch(false);
        else renderStatus();
      })
      .catch(function () {
        pollFailures += 1;
        setLive(false, "Server unreachable, retrying");
      })
      .then(function () {
        setTimeout(poll, pollFailures ? Math.min(30000, POLL_MS * Math.pow(2, pollFailures)) : POLL_MS);
      });
  }

  function scheduleRefreshes() {
    tileTimers.forEach(clearInterval);
    tileTimers = [];
    var periods = data.tiles
      .map(function (t) { return t.refresh_s; })
      .concat([data.dashboard.refresh_s])
      .filter(function (s) { return s && s > 0; });
    if (periods.length) {
      var every = Math.max(1, Math.min.apply(null, periods)) * 1000;
      tileTimers.push(setInterval(function () { refetch(false); }, every));
    }
  }

  // ---- start ------------------------------------------------------------------------------
  document.getElementById("sql-close").addEventListener("click", function () {
    document.getElementById("sql-dialog").close();
  });
  renderFilters();
  renderGrid();
  renderStatus();
  markBadFilters();
  document.body.setAttribute("data-version", (lastState && lastState.version) || "");
  setInterval(renderStatus, 1000);
  if (!exported) {
    window.addEventListener("popstate", function () {
      var params = new URLSearchParams(location.search);
      data.dashboard.filters.forEach(function (f) {
        f.value = params.has(f.name) ? params.get(f.name) : f.default_value || "";
      });
      renderFilters();
      refetch(true);
    });
    scheduleRefreshes();
    setTimeout(poll, POLL_MS);
  }
})();
