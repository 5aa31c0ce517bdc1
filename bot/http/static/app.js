// Encore page: small progressive enhancements. Everything works without this file.
(() => {
  "use strict";
  document.documentElement.classList.add("js");
  const main = () => document.getElementById("main");

  // Forms marked data-enhance (start radio, 👍/👎/next) are sent with fetch; the server answers
  // with a redirect to the next page, whose <main> replaces ours (no full reload, no flash).
  async function submitEnhanced(form, submitter) {
    const body = new URLSearchParams(new FormData(form, submitter));
    main().classList.add("loading");
    try {
      // form.action would be the button named "action"; read the attribute.
      const response = await fetch(form.getAttribute("action"), { method: "POST", body, credentials: "same-origin" });
      const html = await response.text();
      const doc = new DOMParser().parseFromString(html, "text/html");
      const next = doc.getElementById("main");
      if (!next) throw new Error("no <main> in the answer");
      main().replaceWith(next);
      document.title = doc.title;
      if (response.ok && response.url !== location.href) history.pushState({}, "", response.url);
      bind(next);
      const focus = next.querySelector(".radio-controls .next, h1");
      if (focus) focus.focus({ preventScroll: true });
    } catch (err) {
      // Fall back to the plain form post, keeping the pressed button's value.
      if (submitter && submitter.name) {
        const hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = submitter.name;
        hidden.value = submitter.value;
        form.append(hidden);
      }
      form.submit();
    } finally {
      const current = main();
      if (current) current.classList.remove("loading");
    }
  }

  function embed(button) {
    const frame = document.createElement("iframe");
    frame.src = button.dataset.embed;
    frame.height = button.dataset.height || "152";
    frame.allow = "autoplay; clipboard-write; encrypted-media; fullscreen; picture-in-picture";
    frame.loading = "lazy";
    frame.title = button.textContent.trim();
    button.replaceWith(frame);
  }

  function bind(root) {
    root.querySelectorAll("form[data-enhance]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        submitEnhanced(form, event.submitter);
      });
    });
    root.querySelectorAll("button[data-embed]").forEach((button) => {
      button.addEventListener("click", () => embed(button));
    });
  }

  // Keyboard on a radio: L = like, S = skip, N = next (not while typing in the search box).
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea") || event.metaKey || event.ctrlKey || event.altKey) return;
    const action = { l: "like", s: "skip", n: "next" }[event.key.toLowerCase()];
    const button = action && document.querySelector(`.radio-controls button[value="${action}"]`);
    if (button) button.click();
  });

  window.addEventListener("popstate", () => location.reload());
  document.addEventListener("DOMContentLoaded", () => bind(document));
})();
