"""The page's own style and script: the panels' CSS; the banner shown while the server does not
answer (or answers that Redis is unreachable), in the browser's language, the panels keeping their
last state meanwhile; the toasts' headings in that language (Gradio writes its type, "Error",
"Info", in English whatever the locale and the title asked for) and its buttons' tooltips and
screen-reader labels in that language (its frontend writes some in English only); and the live log that follows
its end unless scrolled up."""

from __future__ import annotations

import json

from heygem_web.ui.text import GRADIO_ATTRIBUTES, t

CSS = """
.hg-bar{height:18px;background:#e5e7eb;border-radius:9px;overflow:hidden;margin:6px 0}
.hg-bar>div{height:100%;background:#2563eb;transition:width .5s}
.hg-bar>div.hg-ok{background:#16a34a}
.hg-bar>div.hg-mixed{background:linear-gradient(90deg,#16a34a,#f59e0b)}
.hg-bar>div.hg-bad{background:#dc2626}
.hg-bar>div.hg-off{background:#9ca3af}
.hg-line{margin:2px 0;font-size:15px}
.hg-scroll{max-width:100%;overflow-x:auto}
.hg-table{width:100%;border-collapse:collapse;font-size:14px}
.hg-table td,.hg-table th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
.hg-table .hg-word,.hg-table th{white-space:nowrap}
.hg-table .hg-name{overflow-wrap:anywhere;max-width:22em}
.hg-reason{min-width:10em}
.hg-detail{display:block;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;color:#374151;
 max-height:12em;overflow:auto}
.hg-failed{color:#dc2626;font-weight:600}
.hg-results{display:flex;flex-wrap:wrap;gap:12px}
.hg-result{width:320px;max-width:100%}
.hg-result video{width:100%;background:#111;border-radius:6px}
.hg-actions{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.hg-btn{display:inline-block;padding:6px 14px;border:1px solid #d1d5db;border-radius:6px;
 text-decoration:none!important;color:#111827!important;background:#f9fafb;font-weight:600;margin-top:4px}
.hg-btn.hg-primary{background:#2563eb;border-color:#2563eb;color:#fff!important;font-size:16px;padding:8px 18px}
.hg-queue ol{margin:4px 0 4px 0;padding-left:0;list-style:none}
.hg-queue-row{padding:2px 4px;border-radius:4px}
.hg-queue-row.hg-shown{background:#eff6ff}
.hg-engines{list-style:none;padding-left:0;margin:0;font-size:13px;color:#4b5563}
#hg-preview{max-height:200px}
[data-testid=status-tracker].hidden,#hg-panel [data-testid=status-tracker],#hg-queue [data-testid=status-tracker],
#hg-table [data-testid=status-tracker],#hg-results [data-testid=status-tracker],
#hg-system [data-testid=status-tracker]{display:none!important}
#hg-cancel:disabled,#hg-retry:disabled{opacity:.45}
@media (max-width:640px){
 .hg-table .hg-opt{display:none}
 .hg-table .hg-name{max-width:9em}
 .tab-wrapper .tab-container button{padding-left:5px!important;padding-right:5px!important;font-size:14px!important}
}
#hg-offline{display:none;position:fixed;top:0;left:0;right:0;z-index:1000;background:#dc2626;
 color:#fff;text-align:center;padding:6px;font-weight:600}
"""


TOAST_KINDS = ("error", "warning", "info", "success")
WORDY_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")  # what a tooltip or a screen reader says


def head() -> str:
    """The script in the page's <head>: the offline banner and the log that follows its end."""
    words = {lang: {"offline": t(lang, "offline"), "redis": t(lang, "offline_redis"),
                    "toast": {kind: t(lang, f"toast_{kind}") for kind in TOAST_KINDS},
                    "gradio": GRADIO_ATTRIBUTES[lang]} for lang in ("zh", "en")}
    return HEAD.replace("__WORDS__", json.dumps(words, ensure_ascii=False)).replace(
        "__ATTRIBUTES__", json.dumps(WORDY_ATTRIBUTES))


HEAD = """
<script>
(function(){
  var words = __WORDS__;
  var lang = (navigator.language || '').toLowerCase().indexOf('zh') === 0 ? 'zh' : 'en';
  function banner(){ var b=document.getElementById('hg-offline');
    if(!b){ b=document.createElement('div'); b.id='hg-offline'; b.textContent=words[lang].offline;
      document.body.appendChild(b);} return b; }
  async function ping(){
    var b = banner();
    try {
      const r = await fetch('healthz', {cache:'no-store'});
      const body = await r.json().catch(function(){ return {}; });
      b.textContent = body.redis === 'unreachable' ? words[lang].redis : words[lang].offline;
      b.style.display = r.ok ? 'none' : 'block';
    } catch(e){ b.textContent = words[lang].offline; b.style.display = 'block'; }
  }
  function follow(){
    var log = document.querySelector('#hg-log textarea');
    if(!log) return;
    if(!log.dataset.hgFollow){ log.dataset.hgFollow = 'yes';
      log.addEventListener('scroll', function(){
        log.dataset.hgFollow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8 ? 'yes' : 'no'; }); }
    if(log.dataset.hgFollow === 'yes' && log.offsetParent) log.scrollTop = log.scrollHeight;
  }
  function toasts(){
    document.querySelectorAll('.toast-title').forEach(function(el){
      var kind = ['error','warning','info','success'].find(function(k){ return el.classList.contains(k); });
      var text = el.firstChild;
      if(kind && text && text.nodeType === 3 && text.nodeValue.trim() !== words[lang].toast[kind])
        text.nodeValue = words[lang].toast[kind] + ' ';
    });
  }
  var attributes = __ATTRIBUTES__;
  var gradio = words[lang].gradio.map(function(rule){ return [new RegExp(rule[0]), rule[1]]; });
  function say(el, name){
    var v = el.getAttribute(name), rule = v && gradio.find(function(r){ return r[0].test(v); });
    if(rule) el.setAttribute(name, v.replace(rule[0], rule[1]));
  }
  function own(node){
    if(node.nodeType !== 1) return;
    var selector = attributes.map(function(a){ return '[' + a + ']'; }).join(',');
    var all = [node].concat(Array.from(node.querySelectorAll(selector)));
    all.forEach(function(el){ attributes.forEach(function(a){ say(el, a); }); });
  }
  function changed(records){
    toasts();
    records.forEach(function(r){
      if(r.type === 'attributes') say(r.target, r.attributeName);
      else r.addedNodes.forEach(own);
    });
  }
  var watch = {childList:true, subtree:true};
  if(gradio.length){ watch.attributes = true; watch.attributeFilter = attributes; }
  new MutationObserver(changed).observe(document.documentElement, watch);
  if(document.body) own(document.body);
  setInterval(ping, 2000);
  setInterval(follow, 500);
})();
</script>
"""
