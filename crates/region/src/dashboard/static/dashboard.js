// The dashboard's script: live updates over server-sent events, and small
// conveniences. Every page works without it; it only keeps pages current
// and saves clicks. No framework, no build step.
"use strict";

(function () {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  // Forms act once: the first submit disables the form's buttons, so a
  // double click sends one request (the server refuses a repeated form
  // token as well).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const confirmer = event.submitter && event.submitter.dataset.confirm;
    if (confirmer && !window.confirm(confirmer)) {
      event.preventDefault();
      return;
    }
    if (form.dataset.submitted === "yes") {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "yes";
    // Disable after the submit is under way, so the pressed button's value is sent.
    setTimeout(() => {
      form.querySelectorAll('button[type="submit"], input[type="submit"]').forEach((b) => {
        b.disabled = true;
      });
    }, 0);
  }, true);

  // Selects marked data-autosubmit submit their form on change.
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });

  // Machine selection: select all on the page, per group, and a count.
  const updateCount = () => {
    const counter = document.querySelector("[data-selected-count]");
    if (!counter) return;
    const n = document.querySelectorAll('input[name="system_id"]:checked').length;
    counter.textContent = n ? `${n} selected` : "";
  };
  const selectAll = document.querySelector("[data-select-all]");
  if (selectAll) {
    selectAll.addEventListener("change", () => {
      document.querySelectorAll('input[name="system_id"]').forEach((box) => {
        box.checked = selectAll.checked;
      });
      updateCount();
    });
  }
  document.addEventListener("change", (event) => {
    if (event.target.name === "system_id") updateCount();
  });

  // Bulk actions: show the argument field (zone, pool, tag) the action needs.
  const actionSelect = document.querySelector("[data-action-select]");
  if (actionSelect) {
    const showArgument = () => {
      const option = actionSelect.selectedOptions[0];
      const wanted = option ? option.dataset.argument : undefined;
      document.querySelectorAll("[data-argument-for]").forEach((label) => {
        label.hidden = label.dataset.argumentFor !== wanted;
      });
    };
    actionSelect.addEventListener("change", showArgument);
    showArgument();
  }

  // Power type pickers: show the selected driver's fields only.
  document.querySelectorAll("[data-power-select]").forEach((select) => {
    const form = select.form;
    const show = () => {
      form.querySelectorAll("fieldset[data-power-type]").forEach((fieldset) => {
        const on = fieldset.dataset.powerType === select.value;
        fieldset.hidden = !on;
        fieldset.disabled = !on;
      });
    };
    select.addEventListener("change", show);
    show();
  });

  // Live updates. Pages mark what they show: rows of a machine table
  // (data-live-table, rows with data-system-id), a machine header
  // (#machine-header) or the fleet counts (data-live-counts).
  const table = document.querySelector("[data-live-table]");
  const header = document.getElementById("machine-header");
  const counts = document.querySelector("[data-live-counts]");
  if (!window.EventSource || !(table || header || counts)) return;

  const indicator = document.querySelector("[data-live-indicator]");
  const setLive = (on) => {
    document.body.dataset.live = on ? "on" : "off";
    if (indicator) indicator.textContent = on ? "● live" : "";
  };

  const fetchHtml = async (url) => {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), Accept: "text/html" },
    });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    return template.content;
  };

  const pending = new Set();
  let timer = null;
  let refreshCounts = false;
  let refreshHeader = false;

  const flush = async () => {
    timer = null;
    const ids = Array.from(pending);
    pending.clear();
    try {
      if (table && ids.length) {
        const query = ids.map((id) => `id=${encodeURIComponent(id)}`).join("&");
        const fragment = await fetchHtml(`/MAAS/r/machines/rows?${query}`);
        const fresh = new Map();
        fragment.querySelectorAll("tr[data-system-id]").forEach((row) => {
          fresh.set(row.dataset.systemId, row);
        });
        for (const id of ids) {
          const old = table.querySelector(`tr[data-system-id="${CSS.escape(id)}"]`);
          if (!old) continue;
          const row = fresh.get(id);
          if (row) {
            const box = old.querySelector('input[name="system_id"]');
            const newBox = row.querySelector('input[name="system_id"]');
            if (box && newBox) newBox.checked = box.checked;
            row.classList.add("updated");
            old.replaceWith(row);
          } else {
            old.remove();
          }
        }
      }
      if (header && refreshHeader) {
        refreshHeader = false;
        const id = header.dataset.systemId;
        const fragment = await fetchHtml(`/MAAS/r/machine/${encodeURIComponent(id)}/header`);
        const fresh = fragment.getElementById("machine-header");
        if (fresh) {
          fresh.classList.add("updated");
          document.getElementById("machine-header").replaceWith(fresh);
        }
      }
      if (counts && refreshCounts) {
        refreshCounts = false;
        const fragment = await fetchHtml("/MAAS/r/?fragment=counts");
        const fresh = fragment.querySelector("[data-live-counts]");
        const current = document.querySelector("[data-live-counts]");
        if (fresh && current) current.replaceWith(fresh);
      }
    } catch (error) {
      console.warn("live update failed", error);
    }
  };

  const schedule = (delay) => {
    if (timer === null) timer = setTimeout(flush, delay);
  };

  const source = new EventSource("/MAAS/r/stream");
  source.addEventListener("ready", () => setLive(true));
  source.addEventListener("error", () => setLive(false));
  source.addEventListener("machine", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (table && table.querySelector(`tr[data-system-id="${CSS.escape(change.system_id)}"]`)) {
      pending.add(change.system_id);
      schedule(150);
    }
    if (header && header.dataset.systemId === change.system_id) {
      refreshHeader = true;
      schedule(150);
    }
    if (counts) {
      refreshCounts = true;
      schedule(1000);
    }
  });
  source.addEventListener("resync", () => {
    if (table) table.querySelectorAll("tr[data-system-id]").forEach((row) => pending.add(row.dataset.systemId));
    refreshHeader = Boolean(header);
    refreshCounts = Boolean(counts);
    schedule(150);
  });
})();
