// Pages with nothing to load (the "not found" page): only the sign-out button.
import { app, forgetKey, getKey } from "./api.js";
import { $ } from "./ui.js";

const out = $("#signout");
if (out && getKey()) {
  out.hidden = false;
  out.addEventListener("click", () => {
    forgetKey();
    location.assign(`${app}/signin?signed_out=1`);
  });
}
