// The CSV import's progress page: keep the <progress> element current, then show the outcome.
"use strict";
(() => {
  const box = document.getElementById("import-progress");
  if (!box) return;
  const bar = document.getElementById("import-bar");
  const status = document.getElementById("import-status");
  const kind = box.dataset.kind;
  const poll = async () => {
    let state;
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) { window.location.reload(); return; }
      state = await response.json();
    } catch (error) {
      setTimeout(poll, 2000);
      return;
    }
    bar.max = state.max;
    bar.value = state.value;
    bar.textContent = Math.round((100 * state.value) / state.max) + "%";
    if (state.finished) { window.location.reload(); return; }
    status.textContent = state.state === "writing"
      ? "Every row passed: writing " + state.rows.toLocaleString() + " " + kind + "."
      : "Checking the rows: " + state.rows.toLocaleString() + " ready so far.";
    setTimeout(poll, 500);
  };
  setTimeout(poll, 300);
})();
