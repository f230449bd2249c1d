(function(){
  var miss=document.getElementById('f-miss'),flip=document.getElementById('f-flip'),
      text=document.getElementById('f-text'),count=document.getElementById('f-count'),
      reset=document.getElementById('f-reset');
  function apply(){
    var q=text.value.trim().toLowerCase(),shown=0,total=0;
    document.querySelectorAll('.suite-cases').forEach(function(block){
      var visible=0;
      block.querySelectorAll('.case').forEach(function(el){
        total++;
        var ok=(!miss.checked||el.getAttribute('data-miss')==='1')&&
               (!flip.checked||el.getAttribute('data-flip')==='1')&&
               (!q||el.textContent.toLowerCase().indexOf(q)>=0);
        el.hidden=!ok; if(ok){shown++;visible++;}
      });
      block.querySelector('.none').hidden=visible>0;
    });
    count.textContent=shown+' of '+total+' cases';
  }
  miss.addEventListener('change',apply);flip.addEventListener('change',apply);
  text.addEventListener('input',apply);
  reset.addEventListener('click',function(){miss.checked=false;flip.checked=false;text.value='';apply();});
  apply();
})();
