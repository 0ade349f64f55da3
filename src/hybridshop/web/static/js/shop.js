// Progressive enhancement only: every page works without this file.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  // A second click while a purchase is in flight would only repeat the same idempotent
  // request, but disabling the button tells the buyer something is happening.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[data-busy-label]").forEach(function (btn) {
        btn.textContent = btn.getAttribute("data-busy-label");
        window.setTimeout(function () { btn.disabled = true; }, 0);
      });
    });
  });
  document.querySelectorAll("input[data-autosubmit]").forEach(function (input) {
    input.addEventListener("change", function () { input.form.submit(); });
  });
});
