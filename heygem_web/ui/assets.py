"""The page's own style and script: the panels' CSS, and the banner shown while the server does
not answer (or answers that Redis is unreachable); the panels keep their last state meanwhile."""

from __future__ import annotations

CSS = """
.hg-bar{height:18px;background:#e5e7eb;border-radius:9px;overflow:hidden;margin:6px 0}
.hg-bar>div{height:100%;background:linear-gradient(90deg,#2563eb,#16a34a);transition:width .5s}
.hg-line{margin:2px 0;font-size:15px}
.hg-table{width:100%;border-collapse:collapse;font-size:14px}
.hg-table td,.hg-table th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left}
.hg-failed{color:#dc2626;font-weight:600}
.hg-results{display:flex;flex-wrap:wrap;gap:12px}
.hg-result{width:320px}
.hg-result video{width:100%;background:#000;border-radius:6px}
#hg-offline{display:none;position:fixed;top:0;left:0;right:0;z-index:1000;background:#dc2626;
 color:#fff;text-align:center;padding:6px;font-weight:600}
"""
HEAD = """
<script>
(function(){
  function banner(){ var b=document.getElementById('hg-offline');
    if(!b){ b=document.createElement('div'); b.id='hg-offline';
      b.textContent='连接中断,正在重试… / Connection lost, retrying…'; document.body.appendChild(b);} return b; }
  async function ping(){
    var b = banner();
    try {
      const r = await fetch('healthz', {cache:'no-store'});
      const body = await r.json().catch(function(){ return {}; });
      b.textContent = body.redis === 'unreachable'
        ? 'Redis 连接中断,正在重试… / Redis unreachable, retrying…'
        : '连接中断,正在重试… / Connection lost, retrying…';
      b.style.display = r.ok ? 'none' : 'block';
    } catch(e){ b.textContent = '连接中断,正在重试… / Connection lost, retrying…'; b.style.display = 'block'; }
  }
  setInterval(ping, 2000);
})();
</script>
"""
