// Small progressive enhancement: highlight the leading choice on results pages.
document.addEventListener("DOMContentLoaded", () => {
  const counts = Array.from(document.querySelectorAll(".results .votes"));
  if (counts.length === 0) {
    return;
  }
  const best = Math.max(...counts.map((el) => Number(el.dataset.votes)));
  if (best > 0) {
    counts
      .filter((el) => Number(el.dataset.votes) === best)
      .forEach((el) => el.closest("li").classList.add("leading"));
  }
});
