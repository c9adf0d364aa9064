#!/usr/bin/env bash
# The jobs a new cluster proves itself with, run as the cluster user on the master (scripts/demo
# and the local cloud's image test run it): each prints what it ran where.
#   hostname: a Slurm job on both workers
#   mpi:      a C program built with mpicc, one rank per worker (srun --mpi=pmix)
#   r:        an R package installed on the master into the shared /data/R/library, used on node002
#   fortran:  a program compiled on the master with gfortran, run on node001
#   python:   numpy and mpi4py on node001
set -euo pipefail
work=$(mktemp -d ~/jobs.XXXX)
cd "$work"

echo "== hostname: srun on both workers"
srun -N2 hostname | sort

echo "== mpi: one rank per worker"
cat > hello.c <<'C'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
  int rank, size, length;
  char host[MPI_MAX_PROCESSOR_NAME];
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_processor_name(host, &length);
  printf("mpi rank %d of %d on %s\n", rank, size, host);
  MPI_Finalize();
  return 0;
}
C
mpicc -o hello hello.c
srun -N2 --ntasks-per-node=1 --mpi=pmix ./hello | sort

echo "== r: a package from /data/R/library, on node002"
mkdir -p awschello/R
printf 'Package: awschello\nVersion: 0.1\nTitle: Hello\nDescription: Says hello.\nLicense: MIT\nAuthor: awsc\nMaintainer: awsc <awsc@example.org>\n' > awschello/DESCRIPTION
echo 'export(hello)' > awschello/NAMESPACE
echo 'hello <- function() paste("r package awschello from", find.package("awschello"), "on", Sys.info()[["nodename"]])' > awschello/R/hello.R
R CMD INSTALL --no-test-load awschello >install.log 2>&1 || { cat install.log; exit 1; }
srun -w node002 Rscript -e 'library(awschello); cat(hello(), "\n")'

echo "== fortran: compiled on the master, run on node001"
cat > hello.f90 <<'F'
program hello
  character(len=64) :: host
  call hostnm(host)
  print '(a, a)', 'fortran on ', trim(host)
end program hello
F
gfortran -o hello_f hello.f90
srun -w node001 ./hello_f

echo "== python: numpy and mpi4py on node001"
srun -w node001 python3 -c 'import socket, numpy, mpi4py; print("python numpy", numpy.__version__, "mpi4py", mpi4py.__version__, "on", socket.gethostname())'
rm -rf "$work"
