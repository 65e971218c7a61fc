# gnuplot script written by kq report: run in this folder (gnuplot charts.gp).
# Each chart goes to NAME.png.kqtmp / NAME.svg.kqtmp; kq report renames them when gnuplot succeeds.
pngterm = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo noenhanced font "sans,10"' : 'png noenhanced'
set grid
set key top right
set offsets graph 0.08, graph 0.08, graph 0.1, graph 0.1
# 1. perplexity vs bits per weight
set title 'stories260k: perplexity vs bits per weight (whole file)'
set xlabel 'bits per weight (whole file, fallbacks included)'
set ylabel 'perplexity (± stderr)'
eval('set terminal '.pngterm.' size 1000,640')
set output 'ppl_vs_bpw.png.kqtmp'
plot 'ppl_bpw.dat' using 2:3:4 with yerrorbars pt 7 ps 1.2 lc rgb '#1f5fa0' title 'perplexity', \
     '' using 2:3:1 with labels offset 0,1.2 notitle
set terminal svg noenhanced size 1000,640 dynamic
set output 'ppl_vs_bpw.svg.kqtmp'
replot
# 2. ms per token vs file size
set title "stories260k: generation ms/token vs file size\n(host timings: x86-64 host (Intel(R) Xeon(R) Processor), reference kernels, 2 threads; bars: 95% CI)"
set xlabel 'file size (MiB)'
set ylabel 'ms per generated token (median)'
eval('set terminal '.pngterm.' size 1000,640')
set output 'ms_vs_size.png.kqtmp'
plot 'ms_size.dat' using 2:3:4:5 with yerrorbars pt 7 ps 1.2 lc rgb '#a0301f' title 'ms/token', \
     '' using 2:3:1 with labels offset 0,1.2 notitle
set terminal svg noenhanced size 1000,640 dynamic
set output 'ms_vs_size.svg.kqtmp'
replot
# 3. per-tensor error
set offsets 0.5, 0.5, 0, 0
set title 'stories260k: per-tensor quantization error (reference quantizers)'
set xlabel ''
set ylabel 'relative Frobenius error ||y-x||/||x|| (log)'
set logscale y
set xtics rotate by 60 right font ',8'
set bmargin 12
set key outside right top
set datafile missing 'NaN'
ncols = 4
eval('set terminal '.pngterm.' size 1200,700')
set output 'tensor_error.png.kqtmp'
plot for [i=3:ncols+2] 'tensor_error.dat' using 1:i:xtic(2) with linespoints pt 7 ps 0.8 title columnheader(i)
set terminal svg noenhanced size 1200,700 dynamic
set output 'tensor_error.svg.kqtmp'
replot
unset output
