// Copy buttons for the one-time secret display. Without script the values are plain selectable text.
document.querySelectorAll("button.copy").forEach(function (button) {
  if (!navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var source = document.getElementById(button.dataset.copy);
    var status = document.getElementById("copy-status");
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      if (status) { status.textContent = button.textContent.replace("Copy ", "") + " copied to the clipboard."; }
    });
  });
});
