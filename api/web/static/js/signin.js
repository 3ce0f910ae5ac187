// Sign in: the key is tried on GET /v1/jobs before it is kept, so a wrong key says so at once.
import { app, call, forgetKey, setKey } from "./api.js";
import { $, onSubmit, showError, showOk } from "./ui.js";

const params = new URLSearchParams(location.search);
if (params.get("signed_out")) showOk("You are signed out. The key was removed from this tab.");

function nextPage() {
  const next = params.get("next") || "";
  // Only a page of this app: never a link to another site.
  return next.startsWith(`${app}/`) && !next.startsWith("//") ? next : `${app}/jobs`;
}

onSubmit($("#signin-form"), async () => {
  const key = $("#api-key").value.trim();
  if (!key) {
    showError("Enter an API key.");
    $("#api-key").focus();
    return;
  }
  setKey(key);
  try {
    await call("GET", "/v1/jobs", { query: { limit: 1 } });
  } catch (e) {
    forgetKey();
    showError(e);
    $("#api-key").select();
    return;
  }
  location.assign(nextPage());
});
$("#api-key").focus();
