// The Loopline view: a React component the Airflow UI (3.3) mounts from `react_apps`.
// Plain JavaScript with React.createElement and the host's React global: no build step, so
// `make run` serves it as it is in the repository. Data: the view's own routes under
// loopline/api/ (same origin, the UI's session cookie); the rollback button calls Airflow's
// REST API, which applies Airflow's permissions.
(function () {
  "use strict";
  const React = globalThis.React;
  const h = React.createElement;
  const { useEffect, useState, useCallback } = React;

  const url = (path) => new URL(path, document.baseURI).toString();
  const fetchJson = async (path, options) => {
    const response = await fetch(url(path), { credentials: "same-origin", ...options });
    const text = await response.text();
    const body = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const detail = body && body.detail ? JSON.stringify(body.detail) : response.statusText;
      throw new Error(`${response.status}: ${detail}`);
    }
    return body;
  };

  const styles = {
    page: { padding: "12px 16px", fontSize: "14px", lineHeight: 1.4 },
    section: { margin: "18px 0" },
    h2: { fontSize: "17px", fontWeight: 600, margin: "0 0 6px" },
    table: { borderCollapse: "collapse", width: "100%" },
    th: { textAlign: "left", borderBottom: "1px solid #8884", padding: "3px 8px" },
    td: { borderBottom: "1px solid #8882", padding: "3px 8px", verticalAlign: "top" },
    muted: { opacity: 0.7 },
    bad: { color: "#d33" },
    good: { color: "#2a2" },
    button: { padding: "3px 10px", border: "1px solid #8888", borderRadius: "4px", cursor: "pointer" },
  };
  const GOOD = new Set(["passed", "validated", "champion", "promote", "pass", "done", "within_limits", "no_change", "registered"]);
  const BAD = new Set(["failed", "quarantined", "refused", "refuse", "fail", "retrain", "unhealthy", "rolled_back", "up_for_retry"]);
  const verdictStyle = (v) => (BAD.has(v) ? styles.bad : GOOD.has(v) ? styles.good : {});
  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "");
  const num = (x, digits = 3) => (x === null || x === undefined ? "" : Number(x).toFixed(digits));

  function Table({ columns, rows, empty }) {
    if (!rows.length) return h("div", { style: styles.muted }, empty || "none yet");
    return h("table", { style: styles.table },
      h("thead", null, h("tr", null, columns.map((c) => h("th", { key: c[0], style: styles.th }, c[0])))),
      h("tbody", null, rows.map((row, i) => h("tr", { key: i },
        columns.map((c) => h("td", { key: c[0], style: styles.td }, c[1](row)))))));
  }

  function Section({ title, children, testId }) {
    return h("section", { style: styles.section, "data-testid": testId },
      h("h2", { style: styles.h2 }, title), children);
  }

  function ReportLink({ pipeline, stage, runId, subject }) {
    const query = subject && subject !== "run" ? `?subject=${encodeURIComponent(subject)}` : "";
    const path = `loopline/api/pipelines/${encodeURIComponent(pipeline)}/reports/${stage}/${encodeURIComponent(runId)}${query}`;
    return h("a", { href: url(path), download: "" }, "report");
  }

  // Drift over time: the drifted share of each audit (thick) and each feature's score against
  // its limit (thin, dashed where the limit is), one point per audit, oldest left.
  function DriftChart({ points }) {
    const audits = points.filter((p) => p.drifted_share !== null);
    if (audits.length < 1) return h("div", { style: styles.muted }, "no drift audit with numbers yet");
    const width = 640, height = 180, pad = 30;
    const x = (i) => pad + (audits.length === 1 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (audits.length - 1));
    const y = (v) => height - pad - Math.max(0, Math.min(1, v)) * (height - 2 * pad);
    const line = (values) => values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const features = [...new Set(audits.flatMap((p) => p.features.map((f) => f.column)))];
    const palette = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
    return h("svg", { width, height, role: "img", "aria-label": "drift over time", style: { maxWidth: "100%" } },
      h("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), stroke: "#8886" }),
      h("line", { x1: pad, y1: y(1), x2: width - pad, y2: y(1), stroke: "#8883" }),
      h("text", { x: 2, y: y(1) + 4, fontSize: 10, fill: "currentColor" }, "1.0"),
      h("text", { x: 2, y: y(0) + 4, fontSize: 10, fill: "currentColor" }, "0"),
      features.slice(0, palette.length).map((feature, k) => {
        const values = audits.map((p) => {
          const found = p.features.find((f) => f.column === feature);
          return found ? Math.min(1, found.score) : 0;
        });
        return h("path", { key: feature, d: line(values), fill: "none", stroke: palette[k], strokeWidth: 1, opacity: 0.6 },
          h("title", null, feature));
      }),
      h("path", { d: line(audits.map((p) => p.drifted_share)), fill: "none", stroke: "currentColor", strokeWidth: 2.5 },
        h("title", null, "share of drifted features")),
      audits.map((p, i) => h("circle", { key: p.run_id, cx: x(i), cy: y(p.drifted_share), r: 3.5, fill: p.verdict === "retrain" ? "#d33" : "currentColor" },
        h("title", null, `${when(p.ended_at)} ${p.verdict}: ${num(p.drifted_share, 2)} drifted`))));
  }

  function Bar({ share, width = 90 }) {
    return h("span", { style: { display: "inline-block", width: `${Math.round(share * width)}px`, height: "8px", background: "#4e79a7", marginRight: "6px" } });
  }

  function Rollback({ pipeline, dags, champion }) {
    const [state, setState] = useState("");
    const dagId = dags.rollback;
    const roll = useCallback(async () => {
      const reason = window.prompt(`Roll ${pipeline} back from champion v${champion}? Reason:`, "rolled back from the Loopline view");
      if (reason === null) return;
      setState("triggering…");
      try {
        const run = await fetchJson(`api/v2/dags/${encodeURIComponent(dagId)}/dagRuns`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ logical_date: null, conf: { reason } }),
        });
        setState(`triggered ${dagId}: run ${run.dag_run_id}`);
      } catch (error) {
        setState(`refused: ${error.message}`);
      }
    }, [pipeline, dagId, champion]);
    if (!dagId || champion === null) return null;
    return h("span", null,
      h("button", { style: styles.button, onClick: roll, "data-testid": "rollback" }, "Roll back"),
      h("span", { style: { marginLeft: "8px" }, "data-testid": "rollback-state" }, state));
  }

  function Overview({ data }) {
    const p = data.name;
    return h("div", null,
      h("div", { "data-testid": "aliases" },
        h("b", null, p), ` champion v${data.champion ?? "–"} · challenger v${data.challenger ?? "–"} `,
        h(Rollback, { pipeline: p, dags: data.dags, champion: data.champion })),
      h(Section, { title: "Models", testId: "models" }, h(Table, {
        rows: data.versions,
        columns: [
          ["version", (v) => `v${v.version}`],
          ["alias", (v) => v.alias],
          ["created", (v) => when(v.created_at)],
          ["metrics", (v) => Object.entries(v.metrics).map(([k, m]) => `${k} ${num(m)}`).join(" · ")],
          ["top features", (v) => v.importance.slice(0, 4).map(([f, s]) => h("div", { key: f }, h(Bar, { share: s }), `${f} ${num(s, 2)}`))],
          ["device", (v) => v.device],
        ],
      })),
      h(Section, { title: "Promotion decisions", testId: "promotions" }, h(Table, {
        rows: [...data.promotions].reverse(),
        columns: [
          ["ended", (d) => when(d.ended_at)],
          ["stage", (d) => d.stage],
          ["verdict", (d) => h("span", { style: verdictStyle(d.verdict) }, d.verdict)],
          ["reasons", (d) => d.reasons.join("; ")],
          ["run", (d) => h("span", { style: styles.muted }, d.run_id)],
        ],
      })),
      h(Section, { title: "Alias history", testId: "alias-history" }, h(Table, {
        rows: [...data.alias_history].reverse(),
        columns: [
          ["at", (m) => when(m.at)],
          ["alias", (m) => `${m.alias}#${m.sequence}`],
          ["move", (m) => `v${m.previous ?? "–"} → v${m.version}`],
          ["action", (m) => m.action],
          ["by", (m) => m.by],
          ["reason", (m) => m.reason],
        ],
      })),
      h(Section, { title: "Drift", testId: "drift" },
        h(DriftChart, { points: data.drift }),
        h(Table, {
          rows: [...data.drift].reverse(),
          columns: [
            ["ended", (a) => when(a.ended_at)],
            ["verdict", (a) => h("span", { style: verdictStyle(a.verdict) }, a.verdict)],
            ["drifted share", (a) => num(a.drifted_share, 2)],
            ["drifted features", (a) => a.features.filter((f) => f.drifted).map((f) => f.column).join(", ")],
            ["", (a) => (a.report ? h(ReportLink, { pipeline: p, stage: "drift", runId: a.run_id }) : "")],
          ],
        })),
      h(Section, { title: "Validation", testId: "validation" }, h(Table, {
        rows: [...data.validations].reverse(),
        columns: [
          ["ended", (d) => when(d.ended_at)],
          ["file", (d) => (d.subject === "run" ? h("i", null, "the run") : d.subject)],
          ["verdict", (d) => h("span", { style: verdictStyle(d.verdict) }, d.verdict)],
          ["rows", (d) => (d.numbers.rows ?? "")],
          ["reasons", (d) => d.reasons.join("; ")],
          ["", (d) => (d.report ? h(ReportLink, { pipeline: p, stage: "validation", runId: d.run_id, subject: d.subject }) : "")],
        ],
      })),
      h(Section, { title: "Streaming and online deployment", testId: "deployment" },
        h("div", null,
          `replicas: ${Object.entries(data.deployment.replicas).map(([slot, v]) => `#${slot} v${v ?? "–"}`).join(", ") || "none"}`,
          ` · lag ${data.deployment.lag ?? "–"} · p99 ${data.deployment.p99_ms === null ? "–" : `${num(data.deployment.p99_ms, 1)} ms`}`),
        h(Table, {
          rows: [...data.deployment.actions].reverse().slice(0, 10),
          columns: [
            ["ended", (d) => when(d.ended_at)],
            ["action", (d) => d.subject],
            ["verdict", (d) => h("span", { style: verdictStyle(d.verdict) }, d.verdict)],
            ["steps", (d) => d.reasons.join("; ")],
          ],
        })),
      h(Section, { title: "Cost per stage", testId: "cost" }, h(Table, {
        rows: data.cost,
        columns: [
          ["stage", (c) => c.stage],
          ["task tries", (c) => c.tasks],
          ["wall s", (c) => num(c.wall_seconds, 1)],
          ["CPU s", (c) => num(c.cpu_seconds, 1)],
          ["GPU s", (c) => num(c.gpu_seconds, 1)],
          ["peak MiB", (c) => num(c.peak_rss_mib, 0)],
          ["read MiB", (c) => num(c.bytes_read / 1048576, 1)],
          ["wrote MiB", (c) => num(c.bytes_written / 1048576, 1)],
        ],
      })),
      h(Section, { title: "Recent failures", testId: "failures" }, h(Table, {
        rows: data.failures,
        empty: "no failed task",
        columns: [
          ["ended", (f) => when(f.ended_at)],
          ["task", (f) => `${f.dag_id ?? ""} ${f.task}`],
          ["state", (f) => h("span", { style: verdictStyle(f.state) }, f.state)],
          ["error", (f) => f.error],
          ["debug bundle", (f) => h("code", null, f.bundle ?? "")],
          ["log", (f) => (f.log ? h("a", { href: f.log }, "log") : "")],
        ],
      })));
  }

  function LooplineView(props) {
    const fromDag = props && props.dagId ? props.dagId.slice(0, props.dagId.lastIndexOf(".")) : null;
    const [pipelines, setPipelines] = useState(null);
    const [chosen, setChosen] = useState(fromDag);
    const [data, setData] = useState(null);
    const [error, setError] = useState(null);
    useEffect(() => {
      fetchJson("loopline/api/pipelines").then((found) => {
        setPipelines(found);
        if (!fromDag && found.length) setChosen(found[0].name);
      }, (e) => setError(e.message));
    }, [fromDag]);
    useEffect(() => {
      if (!chosen) return;
      setData(null);
      fetchJson(`loopline/api/pipelines/${encodeURIComponent(chosen)}`).then(setData, (e) => setError(e.message));
    }, [chosen]);
    if (error) return h("div", { style: { ...styles.page, ...styles.bad }, "data-testid": "error" }, `Loopline: ${error}`);
    if (!pipelines) return h("div", { style: styles.page }, "loading…");
    if (!pipelines.length) return h("div", { style: styles.page }, "No pipeline you may read.");
    return h("div", { style: styles.page, "data-testid": "loopline-view" },
      fromDag ? null : h("label", null, "Pipeline ",
        h("select", { value: chosen || "", onChange: (e) => setChosen(e.target.value), "data-testid": "pipeline" },
          pipelines.map((q) => h("option", { key: q.name, value: q.name }, q.name)))),
      data ? h(Overview, { data }) : h("div", null, "loading…"));
  }

  globalThis.Loopline = LooplineView;
  globalThis["Loopline pipeline"] = LooplineView;
  globalThis.AirflowPlugin = LooplineView;
})();
