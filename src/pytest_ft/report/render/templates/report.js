// The case list: every case is in the JSON data block #ft-cases; this draws one page of them at a
// time (page_size cases of the filtered list, across suites), with the markup the template gives
// the first page. The filters (misses only, flips only, text) run over all the cases, not the page.
// Text from the report only ever goes in through textContent and DOM properties: never as markup.
(function(){
  var data=JSON.parse(document.getElementById('ft-cases').textContent),
      suites=data.suites,size=data.page_size,
      miss=document.getElementById('f-miss'),flip=document.getElementById('f-flip'),
      text=document.getElementById('f-text'),count=document.getElementById('f-count'),
      reset=document.getElementById('f-reset'),list=document.getElementById('case-list'),
      cases=document.getElementById('cases'),
      pagers=document.querySelectorAll('.pager');
  var all=[],suiteOf=[],total=0;
  suites.forEach(function(s,i){s.cases.forEach(function(c){all.push(c);suiteOf.push(i);});});
  total=all.length;
  // shown[0..n): the cases that pass the filters, in order; starts[s]: where suite s begins in it
  var shown=new Int32Array(total),n=0,starts=new Int32Array(suites.length+1),page=0,filtering=false,
      hay=null,timer=0;

  function el(tag,cls,content){
    var node=document.createElement(tag);
    if(cls)node.className=cls;
    if(content!==undefined&&content!==null)node.textContent=String(content);
    return node;
  }
  function add(parent,child){parent.appendChild(child);return child;}
  function space(parent){parent.appendChild(document.createTextNode(' '));}
  function pre(cls,content){return el('pre',cls,content);}

  function haystack(c,s){
    var parts=[c.id,c.input,c.expected];
    (c.badges||[]).forEach(function(b){parts.push(b[1]);});
    (c.errors||[]).forEach(function(e){parts.push(e);});
    c.answers.forEach(function(a,i){
      parts.push(s.roles[i]);
      if(!a){parts.push('not run');return;}
      parts.push(a.label||a.state,'model' in a?a.model:s.models[i],a.output,a.error,a.reason,a.pass_rate);
      (a.samples||[]).forEach(function(x){parts.push(x);});
    });
    return parts.join('\n').toLowerCase();
  }
  function filter(){
    var q=text.value.trim().toLowerCase(),m=miss.checked,f=flip.checked,g=0;
    if(q&&!hay){hay=new Array(total);for(var k=0;k<total;k++)hay[k]=haystack(all[k],suites[suiteOf[k]]);}
    n=0;
    for(var s=0;s<suites.length;s++){
      starts[s]=n;
      for(var end=g+suites[s].cases.length;g<end;g++){
        var c=all[g];
        if((m&&!c.miss)||(f&&!c.flip)||(q&&hay[g].indexOf(q)<0))continue;
        shown[n++]=g;
      }
    }
    starts[suites.length]=n;
    count.textContent=n+' of '+total+' cases';
    return q||m||f;
  }
  function pages(){return Math.max(1,Math.ceil(n/size));}
  // the page a suite's first matching case is on (a suite with none: where it would be)
  function pageOf(s){return Math.min(Math.floor(starts[s]/size),pages()-1);}

  function answer(a,s,i){
    var role=s.roles[i];
    if(!a){
      var idle=el('div','answer');add(idle,el('div','role',role));add(idle,el('p','muted','not run'));
      return idle;
    }
    var box=el('div','answer '+a.state);
    box.setAttribute('style','border-top-color:'+s.colours[i]);
    var head=add(box,el('div','role',role));
    space(head);add(head,el('span','badge '+a.state,a.label||a.state));
    if(a.score){space(head);add(head,el('span','meta','score '+a.score));}
    if(a.tokens){space(head);add(head,el('span','meta',(a.tokens[0]===null?'':a.tokens[0])+'+'+
                                             (a.tokens[1]===null?'':a.tokens[1])+' tok'));}
    if(a.replayed){space(head);add(head,el('span','meta','replayed'));}
    if(a.flaky){space(head);add(head,el('span','badge flaky','flaky'));}
    if(a.pass_rate){if(!a.flaky)space(head);add(head,el('span','meta',a.pass_rate));}
    add(add(box,el('div','model')),el('code','','model' in a?a.model:s.models[i]));
    add(box,'output' in a?pre('out',a.output):el('p','muted','no answer'));
    if(a.error)add(box,el('p','err',a.error));
    if(a.reason)add(box,el('p','reason',a.reason));
    if(a.samples&&a.samples.length){
      var details=add(box,el('details','samples'));
      add(details,el('summary','',a.samples.length+' samples'));
      var ol=add(details,el('ol'));
      a.samples.forEach(function(x){add(add(ol,el('li')),pre('out',x));});
    }
    return box;
  }
  function article(c,s){
    var node=el('article','case');
    node.setAttribute('data-miss',c.miss?'1':'0');node.setAttribute('data-flip',c.flip?'1':'0');
    node.id=c.anchor===null?'':String(c.anchor);
    var head=add(node,el('header'));add(head,el('code','cid',c.id));
    (c.badges||[]).forEach(function(b){space(head);add(head,el('span','badge '+b[0],b[1]));});
    var io=add(node,el('div','io')),left=add(io,el('div')),right=add(io,el('div'));
    add(left,el('h4','','input'));add(left,pre('',c.input));
    add(right,el('h4','','expected'));add(right,pre('',c.expected));
    (c.errors||[]).forEach(function(e){add(node,el('p','err',e));});
    var answers=add(node,el('div','answers')),columns=Math.max(1,s.roles.length);
    answers.setAttribute('style','grid-template-columns:repeat('+columns+',minmax(0,1fr))');
    c.answers.forEach(function(a,i){add(answers,answer(a,s,i));});
    return node;
  }
  function render(){
    var last=pages()-1,lo,hi,frag=document.createDocumentFragment();
    if(page>last)page=last;
    lo=page*size;hi=Math.min(lo+size,n);
    for(var s=0;s<suites.length;s++){
      var from=Math.max(lo,starts[s]),to=Math.min(hi,starts[s+1]),empty=starts[s]===starts[s+1];
      if(empty?pageOf(s)!==page:from>=to)continue;
      var suite=suites[s],section=add(frag,el('section','suite-cases'));
      section.id='cases-'+suite.index;
      var h3=add(section,el('h3','',suite.name));space(h3);
      var small=add(h3,el('small'));add(small,el('code','',suite.file));
      small.appendChild(document.createTextNode(' · '+suite.cases.length+' cases'+
        (filtering?' · '+(starts[s+1]-starts[s])+' match the filters':'')+(from>starts[s]?' · continued':'')));
      for(var k=from;k<to;k++)add(section,article(all[shown[k]],suite));
      if(empty)add(section,el('p','none','no case matches the filters.'));
    }
    list.textContent='';list.appendChild(frag);
    for(var p=0;p<pagers.length;p++){
      var pager=pagers[p];pager.hidden=false;
      pager.querySelector('.p-info').textContent='page '+(page+1)+' of '+(last+1);
      pager.querySelector('.p-prev').disabled=page===0;
      pager.querySelector('.p-next').disabled=page===last;
    }
  }
  function apply(){filtering=filter();page=0;render();}
  function go(to){page=to;render();cases.scrollIntoView();}

  // a link to a suite's cases (#cases-N) or to a case (#its node id) opens the page it is on
  function follow(){
    var target,s,k,match;
    try{target=decodeURIComponent(location.hash.slice(1));}catch(e){return;}
    match=/^cases-(\d+)$/.exec(target);
    if(!target)return;
    if(match){
      for(s=0;s<suites.length&&String(suites[s].index)!==match[1];s++);
      if(s===suites.length)return;
      page=pageOf(s);render();
    }else{
      for(k=0;k<total&&String(all[k].anchor)!==target;k++);
      if(k===total)return;
      var at=-1;
      for(var j=0;j<n;j++)if(shown[j]===k){at=j;break;}
      if(at<0){miss.checked=false;flip.checked=false;text.value='';filtering=filter();return follow();}
      page=Math.floor(at/size);render();
    }
    var node=document.getElementById(target);
    if(node)node.scrollIntoView();
  }

  miss.addEventListener('change',apply);flip.addEventListener('change',apply);
  // typing searches every case: wait for a pause when there are many
  text.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(apply,total>5000?200:0);});
  reset.addEventListener('click',function(){miss.checked=false;flip.checked=false;text.value='';apply();});
  for(var p=0;p<pagers.length;p++){
    pagers[p].querySelector('.p-prev').addEventListener('click',function(){go(page-1);});
    pagers[p].querySelector('.p-next').addEventListener('click',function(){go(page+1);});
  }
  window.addEventListener('hashchange',follow);
  apply();
  follow();
})();
