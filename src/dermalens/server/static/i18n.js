// Shared page helpers: translated strings (sent by the server), language switch, DOM and number helpers.
// Nothing here lists diagnoses or languages: both come from the embedded page data.
"use strict";

window.DL = (() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const listeners = [];
  let strings = data.strings;
  const COOKIE = "dermalens_lang";

  function t(key, values) {
    let text = key in strings ? strings[key] : key;
    for (const [name, value] of Object.entries(values || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  function apply(root) {
    (root || document).querySelectorAll("[data-i18n]").forEach((el) => {
      const args = el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : undefined;
      el.textContent = t(el.dataset.i18n, args);
    });
    (root || document).querySelectorAll("[data-i18n-aria-label]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
    });
    document.title = t("title." + data.page) + " · DermaLens";
  }

  function remember(lang) {
    document.cookie = `${COOKIE}=${lang}; path=/; max-age=31536000; SameSite=Lax`;
  }

  async function setLanguage(lang, save = true) {
    if (save) remember(lang);
    if (data.page === "about") { // server-rendered text: load the page again in the new language
      const url = new URL(location.href);
      url.searchParams.set("lang", lang);
      location.replace(url.toString());
      return;
    }
    const response = await fetch(`/i18n/${encodeURIComponent(lang)}.json`);
    if (!response.ok) return;
    strings = await response.json();
    data.lang = lang;
    document.documentElement.lang = lang;
    const select = document.getElementById("lang-select");
    if (select) select.value = lang;
    apply();
    listeners.forEach((fn) => fn(lang));
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== undefined && child !== null && child !== false) node.append(child);
    }
    return node;
  }

  const pct = (p, digits = 1) =>
    new Intl.NumberFormat(data.lang, { style: "percent", maximumFractionDigits: digits, minimumFractionDigits: digits }).format(p);

  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("lang-select");
    if (select) select.addEventListener("change", () => setLanguage(select.value));
    // No explicit choice yet: follow the browser's language if the server could not tell (no Accept-Language).
    const chosen = document.cookie.split("; ").some((c) => c.startsWith(COOKIE + "="));
    const asked = new URLSearchParams(location.search).has("lang");
    const browser = (navigator.language || "").split("-")[0].toLowerCase();
    if (!chosen && !asked && browser && browser !== data.lang && browser in data.languages) {
      setLanguage(browser, false);
    }
  });

  return {
    data, t, apply, setLanguage, el, pct,
    onLanguage: (fn) => listeners.push(fn),
    dxName: (code) => t("dx." + code),
    lang: () => data.lang,
  };
})();
