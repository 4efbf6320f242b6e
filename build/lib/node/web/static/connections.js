// Connection settings: the stage list offers only the stages of the workflow chosen.
// Without JavaScript every stage is listed, grouped by workflow, and the server checks the pair.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const workflow of document.querySelectorAll("select[data-stages]")) {
    const stages = document.getElementById(workflow.dataset.stages);
    if (!stages) continue;
    const sync = () => {
      for (const group of stages.querySelectorAll("optgroup")) {
        const mine = group.dataset.workflow === workflow.value;
        group.hidden = !mine;
        group.disabled = !mine;
        if (!mine && group.contains(stages.selectedOptions[0])) stages.value = "";
      }
    };
    workflow.addEventListener("change", sync);
    sync();
  }
});
