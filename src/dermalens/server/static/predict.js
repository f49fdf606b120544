// Predict page: pick or drop images, send each to POST /api/v1/predict (two at a time), show one card per
// image, a summary and a CSV. One request per image, so a bad file spoils only its own card. Patient data
// (age, sex, body site) is taken when images are added and sent with each of them.
"use strict";

(() => {
  const { data, t, el, pct } = DL;
  const CONCURRENCY = 2;
  const items = []; // {id, file, name, url, metadata, status: pending|done|error, result, error, showHeat}
  const queue = [];
  let nextId = 0;
  let active = 0;

  const $ = (id) => document.getElementById(id);
  const input = $("file-input");
  const zone = $("dropzone");
  const cards = $("cards");
  const results = $("results");
  const status = $("status");
  const mb = (bytes) => Math.round(bytes / 1048576);
  let message = null; // [key, values] of the last status message

  function setStatus(key, values) {
    message = key ? [key, values] : null;
    status.textContent = key ? t(key, values) : "";
  }

  function labelName(label) {
    return label === "benign" || label === "malignant" ? t("verdict." + label) : DL.dxName(label);
  }

  // The patient fields that are filled in and enabled (a model that reads no patient data disables them).
  function patientData() {
    const fields = { age: $("patient-age"), sex: $("patient-sex"), site: $("patient-site") };
    const values = {};
    for (const [name, field] of Object.entries(fields)) {
      if (field && !field.disabled && field.value.trim() !== "") values[name] = field.value.trim();
    }
    return values;
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    const age = $("patient-age");
    if (age && !age.disabled && !age.checkValidity()) {
      setStatus("patient.age_invalid");
      age.focus();
      return;
    }
    const metadata = patientData();
    const room = data.limits.max_files - items.length;
    const taken = files.slice(0, Math.max(room, 0));
    if (files.length > taken.length) setStatus("predict.too_many", { n: taken.length, max: data.limits.max_files });
    for (const file of taken) {
      const item = { id: nextId++, file, name: file.name, url: URL.createObjectURL(file), metadata, status: "pending", showHeat: false };
      items.push(item);
      if (file.size > data.limits.max_bytes) {
        item.status = "error";
        item.error = t("predict.file_too_large", { mb: mb(data.limits.max_bytes) });
      } else {
        queue.push(item);
      }
      cards.append(card(item));
    }
    results.hidden = items.length === 0;
    renderSummary();
    pump();
  }

  function pump() {
    while (active < CONCURRENCY && queue.length) {
      const item = queue.shift();
      active++;
      send(item).finally(() => {
        active--;
        if (items.includes(item)) replaceCard(item);
        renderSummary();
        pump();
      });
    }
    const done = items.filter((i) => i.status !== "pending").length;
    if (items.length && done < items.length) setStatus("predict.working", { done, total: items.length });
    else if (items.length && (!message || message[0] === "predict.working")) setStatus("predict.done", { n: done });
  }

  async function send(item) {
    const form = new FormData();
    form.append("files", item.file, item.name);
    form.append("heatmap", "true");
    form.append("tta", $("tta-select").value);
    for (const [name, value] of Object.entries(item.metadata || {})) form.append(name, value);
    try {
      // Several models loaded: ask for each one's own result too (shown in a small table per card).
      const url = `${data.api}/predict` + (data.members > 1 ? "?compare=true" : "");
      // On a server with tokens, the session's CSRF value goes with every POST (server.sessions).
      const headers = data.csrf ? { "X-CSRF-Token": data.csrf } : {};
      const response = await fetch(url, { method: "POST", body: form, headers });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        item.result = body.results[0];
        item.status = "done";
      } else {
        item.status = "error";
        item.error = body.detail || `HTTP ${response.status}`;
      }
    } catch (err) {
      item.status = "error";
      item.error = t("predict.network_error");
    }
  }

  function bar(value, classes, mark, fillClass) {
    const fill = el("div", { class: "fill " + (fillClass || "") });
    fill.style.width = `${(value * 100).toFixed(1)}%`;
    const node = el("div", { class: "bar " + (classes || ""), "aria-hidden": "true" }, fill);
    if (mark !== undefined) {
      const line = el("div", { class: "mark" });
      line.style.left = `${(mark * 100).toFixed(1)}%`;
      node.append(line);
    }
    return node;
  }

  function figure(item) {
    const r = item.result;
    const box = el("div", { class: "figure" });
    box.style.aspectRatio = `${data.input_size[0]} / ${data.input_size[1]}`;
    const thumb = el("img", { class: "thumb", src: item.url, alt: t("card.thumb_alt", { name: item.name }) });
    thumb.addEventListener("error", () => box.remove()); // the browser cannot show it either: no empty frame
    if (data.resize === "stretch") thumb.style.objectFit = "fill"; // show what the model saw, under the heatmap
    box.append(thumb);
    if (r && r.heatmap_png) {
      const heat = el("img", { class: "heat", src: "data:image/png;base64," + r.heatmap_png, alt: t("card.heat_alt") });
      heat.hidden = !item.showHeat;
      box.append(heat);
    }
    return box;
  }

  function card(item) {
    const r = item.result;
    const titleId = `card-title-${item.id}`;
    const node = el("li", { class: "card", id: `card-${item.id}`, "data-state": item.status, "data-decision": r && r.decision,
      "aria-labelledby": titleId, "aria-busy": item.status === "pending" ? "true" : null });
    node.append(el("h3", { id: titleId, text: item.name }), figure(item));
    if (item.status === "pending") {
      node.append(el("p", { class: "small", text: t("card.pending") }));
      return node;
    }
    if (item.status === "error") {
      node.append(el("p", { class: "warn error" }, el("strong", { text: t("card.error") }), el("br"), item.error));
      return node;
    }
    if (r.heatmap_png) {
      const toggle = el("button", { type: "button", class: "button heat-toggle", "aria-pressed": String(item.showHeat),
        text: t(item.showHeat ? "card.hide_heatmap" : "card.show_heatmap") });
      toggle.addEventListener("click", () => {
        item.showHeat = !item.showHeat;
        node.querySelector(".heat").hidden = !item.showHeat;
        toggle.setAttribute("aria-pressed", String(item.showHeat));
        toggle.textContent = t(item.showHeat ? "card.hide_heatmap" : "card.show_heatmap");
      });
      node.append(toggle);
    }
    if (r.decision === "refused") return refusedCard(node, item);
    node.append(el("p", { class: `verdict ${r.decision}`, text: t("verdict." + r.decision) }));
    node.append(
      el("div", { class: "row" }, el("span", { text: t("card.p_malignant") }), el("strong", { class: "p-value", text: pct(r.p_malignant) })),
      bar(r.p_malignant, `pmal ${r.decision}`, r.threshold),
      el("p", { class: "small", text: t("card.threshold", { pct: pct(r.threshold) }) }),
    );
    if (r.metadata) node.append(el("p", { class: "small patient-read", text: t("patient.read", { data: patientText(r.metadata) }) }));
    if (r.decision === "malignant") node.append(el("p", { class: "warn risk", text: t("card.high_risk") }));
    if (r.true_label) {
      node.append(el("p", { class: `truth ${r.correct ? "correct" : "incorrect"}` },
        (r.correct ? "✓ " : "✗ ") + t(r.correct ? "card.correct" : "card.incorrect") + " — " +
        t("card.label", { label: labelName(r.true_label) })));
    }
    node.append(el("p", {}, t("card.diagnosis") + ": ", el("strong", { text: DL.dxName(r.prediction) }),
      ` (${pct(r.probabilities[r.prediction])})`));
    if (r.prediction_set) node.append(setLines(r));
    node.append(el("details", { open: true }, el("summary", { text: t("card.probabilities") }), dxBars(r)));
    if (r.members) node.append(membersTable(r));
    return node;
  }

  // The prediction set ("Melanocytic nevus or Melanoma") and what its coverage means, in words.
  function setLines(r) {
    const names = r.prediction_set.map((code) => DL.dxName(code));
    const words = names.length === 1 ? names[0] : names.slice(0, -1).join(", ") + " " + t("card.set_or") + " " + names[names.length - 1];
    return el("div", { class: "prediction-set", "data-size": String(r.set_size) },
      el("p", {}, t("card.set", { pct: pct(r.set_coverage, 0) }) + ": ", el("strong", { class: "set-names", text: words })),
      el("p", { class: "small set-meaning", text: t("card.set_meaning", { n: Math.round(r.set_coverage * 100) }) }));
  }

  // Each model's own verdict beside the ensemble's (compare=true); a model that refuses has none.
  function membersTable(r) {
    const rows = [...r.members.map((m) => [m.model, m]), [t("card.ensemble"), r]].map(([name, m]) =>
      el("tr", { "data-decision": m.decision },
        el("td", { text: name }),
        el("td", { text: t("verdict." + m.decision) }),
        el("td", { text: m.decision === "refused" ? "—" : pct(m.p_malignant) })));
    return el("table", { class: "members" },
      el("thead", {}, el("tr", {}, el("th", { text: t("card.model") }), el("th", { text: t("history.col.verdict") }),
        el("th", { text: t("card.p_malignant") }))),
      el("tbody", {}, rows));
  }

  function dxBars(r) {
    const malignant = new Set(data.classes.filter((c) => c.malignant).map((c) => c.code));
    const rows = data.classes.map((c) => c.code).filter((code) => code in r.probabilities)
      .sort((a, b) => r.probabilities[b] - r.probabilities[a])
      .map((code) => el("li", { "data-code": code },
        el("div", { class: "row" }, el("span", { text: DL.dxName(code) }), el("span", { text: pct(r.probabilities[code]) })),
        bar(r.probabilities[code], "", undefined, malignant.has(code) ? "malignant" : "")));
    return el("ul", { class: "dx-bars" }, rows);
  }

  // An image the model cannot judge: no verdict, no diagnosis, no risk message; why, and what to send
  // instead. The model's figures stay behind a closed toggle, for analysis only.
  function refusedCard(node, item) {
    const r = item.result;
    node.append(
      el("p", { class: "verdict refused", text: t("verdict.refused") }),
      el("p", { class: "warn refused-why", text: t("card.refused_why") }),
      el("p", { class: "small", text: t("card.refused_todo") }),
    );
    if (r.true_label) node.append(el("p", { class: "truth", text: t("card.label", { label: labelName(r.true_label) }) }));
    node.append(el("details", { class: "anyway" }, el("summary", { text: t("card.show_anyway") }),
      el("p", { class: "small", text: t("card.anyway_note") }),
      el("div", { class: "row" }, el("span", { text: t("card.p_malignant") }), el("span", { class: "p-value", text: pct(r.p_malignant) })),
      dxBars(r), r.members ? membersTable(r) : false));
    return node;
  }

  // What the model read, e.g. "63 years, Male, Torso"; unknown fields are left out.
  function patientText(m) {
    const parts = [];
    if (m.age !== null && m.age !== undefined) parts.push(t("patient.age_value", { age: new Intl.NumberFormat(data.lang).format(m.age) }));
    if (m.sex) parts.push(t("sex." + m.sex));
    if (m.site) parts.push(t("site." + m.site));
    return parts.length ? parts.join(", ") : t("patient.none");
  }

  function replaceCard(item) {
    const old = $(`card-${item.id}`);
    if (old) old.replaceWith(card(item));
  }

  function stat(key, value, name) {
    return el("div", { class: "stat", "data-stat": name }, el("span", { class: "label", text: t(key) }), el("span", { class: "value", text: value }));
  }

  function accuracy(done, field) {
    const scored = done.filter((i) => i.result[field] !== null && i.result[field] !== undefined);
    if (!scored.length) return null;
    const correct = scored.filter((i) => i.result[field]).length;
    return t("summary.accuracy_value", { correct, n: scored.length, pct: pct(correct / scored.length) });
  }

  function renderSummary() {
    const done = items.filter((i) => i.status === "done");
    const summary = $("summary");
    summary.replaceChildren();
    summary.append(stat("summary.images", `${done.length} / ${items.length}`, "images"));
    if (!done.length) return;
    // Refused images have no verdict: they are counted apart, never in verdicts or means.
    const assessed = done.filter((i) => i.result.decision !== "refused");
    const refused = done.length - assessed.length;
    const mean = assessed.length ? assessed.reduce((s, i) => s + i.result.p_malignant, 0) / assessed.length : null;
    summary.append(
      stat("summary.malignant", String(assessed.filter((i) => i.result.decision === "malignant").length), "malignant"),
      stat("summary.refused", String(refused), "refused"),
      stat("summary.errors", String(items.filter((i) => i.status === "error").length), "errors"),
      stat("summary.mean_p", mean === null ? "—" : pct(mean), "mean"),
    );
    const refusedLabelled = done.filter((i) => i.result.decision === "refused" && i.result.true_label).length;
    if (refusedLabelled) summary.append(stat("summary.refused_labelled", String(refusedLabelled), "refused-labelled"));
    const binary = accuracy(done, "correct");
    if (binary) summary.append(stat("summary.accuracy", binary, "accuracy"));
    const dx = accuracy(done, "correct_dx");
    if (dx) summary.append(stat("summary.accuracy_dx", dx, "accuracy-dx"));
  }

  function csvCell(value) {
    let text = value === null || value === undefined ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text; // never a spreadsheet formula
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function downloadCsv() {
    const codes = data.classes.map((c) => c.code);
    const header = ["filename", "status", "decision", "p_malignant", "threshold", "prediction", "prediction_name",
      "prediction_set", "set_size", "ood", "ood_score", "true_label", "correct", "correct_dx", "age", "sex", "site", ...codes.map((c) => "p_" + c), "error"];
    const lines = [header];
    for (const item of items) {
      const r = item.result || {};
      const probs = r.probabilities || {};
      const m = r.metadata || {}; // what the model read: empty for image-only models
      lines.push([item.name, item.status, r.decision, r.p_malignant, r.threshold, r.prediction,
        r.prediction ? DL.dxName(r.prediction) : "", (r.prediction_set || []).join("|"), r.set_size, r.ood, r.ood_score, r.true_label, r.correct, r.correct_dx,
        m.age, m.sex, m.site, ...codes.map((c) => probs[c]), item.error]);
    }
    const text = "\ufeff" + lines.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" })), download: "dermalens-predictions.csv" });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  function clearAll() {
    items.splice(0).forEach((i) => URL.revokeObjectURL(i.url));
    queue.splice(0);
    cards.replaceChildren();
    results.hidden = true;
    setStatus(null);
    renderSummary();
  }

  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("dragover"); addFiles(e.dataTransfer.files); });
  // A file dropped beside the zone must not make the browser navigate away from the results.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("clear-button").addEventListener("click", clearAll);
  $("csv-button").addEventListener("click", downloadCsv);
  DL.onLanguage(() => {
    items.forEach(replaceCard);
    renderSummary();
    if (message) setStatus(message[0], message[1]);
  });
})();
