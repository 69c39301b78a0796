// Branding step: a colour picker and its hex field stay in step, and the preview follows. Without this
// file the hex fields alone work.
(function () {
  "use strict";
  var preview = document.getElementById("brand-preview");
  var vars = { "f-primary": "--p", "f-secondary": "--s", "f-background": "--b", "f-text": "--t" };
  document.querySelectorAll("input[type=color][data-mirror]").forEach(function (picker) {
    var field = document.getElementById(picker.getAttribute("data-mirror"));
    function show(value) { if (preview && /^#[0-9a-fA-F]{6}$/.test(value)) preview.style.setProperty(vars[field.id], value); }
    picker.addEventListener("input", function () { field.value = picker.value; show(picker.value); });
    field.addEventListener("input", function () { if (/^#[0-9a-fA-F]{6}$/.test(field.value)) picker.value = field.value; show(field.value); });
  });
})();
