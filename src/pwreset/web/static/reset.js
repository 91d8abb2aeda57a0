// The reset page works without this script; it adds what only helps (web/routes.py):
// the code's countdown (announced politely at whole minutes), the resend wait, the password's
// show/hide button and its live check against the server's policy.
(function () {
  "use strict";

  function fill(template, n) { return template.replace("{n}", String(n)); }

  // The code's countdown: the clock is for the eyes (aria-hidden); the live region speaks at whole minutes.
  var countdown = document.querySelector(".countdown[data-left]");
  if (countdown) {
    var left = parseInt(countdown.getAttribute("data-left"), 10) || 0;
    var end = Date.now() + left * 1000;
    var clock = countdown.querySelector(".clock");
    var announce = countdown.querySelector(".announce");
    var said = null;
    clock.hidden = false;
    var tick = function () {
      var seconds = Math.max(0, Math.round((end - Date.now()) / 1000));
      var m = Math.floor(seconds / 60), s = seconds % 60;
      clock.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      var minutes = Math.ceil(seconds / 60);
      var say = seconds === 0 ? countdown.getAttribute("data-gone")
        : minutes <= 1 ? countdown.getAttribute("data-one")
        : fill(countdown.getAttribute("data-minutes"), minutes);
      if (say !== said && (said === null || seconds === 0 || minutes <= 1 || minutes % 5 === 0)) {
        announce.textContent = say;
        said = say;
      }
      if (seconds > 0) { window.setTimeout(tick, 1000); }
    };
    tick();
  }

  // The resend wait counts down, then goes away.
  var wait = document.querySelector(".wait[data-wait]");
  if (wait) {
    var waitLeft = parseInt(wait.getAttribute("data-wait"), 10) || 0;
    var waitEnd = Date.now() + waitLeft * 1000;
    var step = function () {
      var seconds = Math.max(0, Math.round((waitEnd - Date.now()) / 1000));
      if (seconds === 0) { wait.hidden = true; return; }
      wait.textContent = fill(wait.getAttribute("data-template"), seconds);
      window.setTimeout(step, 1000);
    };
    if (waitLeft > 0) { step(); }
  }

  var form = document.querySelector("form[data-check]");
  if (!form) { return; }
  var input = form.querySelector("#password");
  var toggle = form.querySelector("button.toggle");
  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    toggle.setAttribute("aria-pressed", show ? "true" : "false");
    toggle.textContent = toggle.getAttribute(show ? "data-hide" : "data-show");
  });
  form.addEventListener("submit", function () { input.type = "password"; });

  // The live check: the server's own policy, asked a moment after typing stops.
  var items = form.querySelectorAll(".rules li[data-rule]");
  var summary = form.querySelector(".rules .summary");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null, asked = 0;
  function show(failed) {
    var all = true;
    items.forEach(function (item) {
      var broken = failed.indexOf(item.getAttribute("data-rule")) !== -1;
      var state = item.querySelector(".state");
      item.className = broken ? "unmet" : "met";
      state.textContent = state.getAttribute(broken ? "data-unmet" : "data-met");
      if (broken) { all = false; }
    });
    summary.textContent = summary.getAttribute(all ? "data-ok" : "data-not");
  }
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      var mine = ++asked;
      var body = new URLSearchParams({ csrf_token: token, password: input.value });
      fetch(form.getAttribute("data-check"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" }
      }).then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer && mine === asked) { show(answer.failed || []); } })
        .catch(function () { /* the check on submit still runs */ });
    }, 350);
  });
}());
