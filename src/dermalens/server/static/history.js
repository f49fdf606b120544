// History page: the prediction log from GET /api/v1/history, filtered and paged; the CSV link follows the filter.
"use strict";

(() => {
  const { data, t, el, pct } = DL;
  const PAGE = 100;
  const form = document.getElementById("history-filter");
  const body = document.querySelector("#history-table tbody");
  const more = document.getElementById("history-more");
  const status = document.getElementById("history-status");
  const csv = document.getElementById("history-csv");
  let rows = [];
  let total = 0;
  let enabled = data.log_enabled;

  function params() {
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (String(value).trim()) query.set(key, String(value).trim());
    return query;
  }

  function labelName(label) {
    if (!label) return "";
    return label === "benign" || label === "malignant" ? t("verdict." + label) : DL.dxName(label);
  }

  function row(r) {
    const when = new Date(r.created);
    const refused = r.decision === "refused"; // no verdict: no probability or diagnosis shown
    return el("tr", { "data-decision": r.decision },
      el("td", {}, el("time", { datetime: r.created, text: when.toLocaleString(data.lang) })),
      el("td", { class: "file", text: r.filename }),
      el("td", { text: t("verdict." + r.decision) }),
      el("td", { text: refused ? "—" : pct(r.p_malignant) }),
      el("td", { text: refused ? "—" : DL.dxName(r.prediction) }),
      el("td", { text: r.ood ? t("common.yes") : t("common.no") }),
      el("td", { text: labelName(r.label) }),
      el("td", { text: r.correct === null ? "" : r.correct ? "✓ " + t("card.correct") : "✗ " + t("card.incorrect") }),
      el("td", {}, el("code", { text: r.model_id })));
  }

  function render() {
    body.replaceChildren(...rows.map(row));
    more.hidden = rows.length >= total;
    if (!enabled) status.textContent = t("history.disabled");
    else if (!total) status.textContent = t("history.empty");
    else status.textContent = t("history.count", { shown: rows.length, total });
  }

  async function load(append) {
    const query = params();
    csv.href = `${data.api}/history.csv?${query}`;
    query.set("limit", String(PAGE));
    query.set("offset", String(append ? rows.length : 0));
    const response = await fetch(`${data.api}/history?${query}`);
    const page = await response.json();
    if (!response.ok) {
      status.textContent = page.detail || `HTTP ${response.status}`;
      return;
    }
    enabled = page.enabled;
    total = page.total;
    rows = append ? rows.concat(page.rows) : page.rows;
    render();
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  DL.onLanguage(render);
  load(false);
})();
