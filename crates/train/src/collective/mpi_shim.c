/* The MPI calls aha makes, as plain C functions over MPI_COMM_WORLD. rsmpi has no in-place
 * all-reduce (MPI_IN_PLACE is not exported) and needs bindgen and libclang at build time; these
 * few wrappers compile with mpicc in a second against OpenMPI or MPICH. Counts above INT_MAX
 * are split into chunks because MPI's counts are ints. Every function returns an MPI error code
 * (MPI_SUCCESS = 0); errors return instead of aborting (MPI_ERRORS_RETURN). */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

int aha_mpi_init(void) {
    int done = 0, provided = 0, rc;
    MPI_Initialized(&done);
    if (done) return MPI_SUCCESS;
    /* Only the main thread calls MPI; rayon's workers never do. */
    rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int aha_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int aha_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

static int reduce_in_place(void *buf, size_t n, size_t width, MPI_Datatype type, MPI_Op op) {
    char *p = (char *)buf;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, count, type, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        p += (size_t)count * width;
        n -= (size_t)count;
    }
    return MPI_SUCCESS;
}

int aha_mpi_sum_f32(float *buf, size_t n) {
    return reduce_in_place(buf, n, sizeof(float), MPI_FLOAT, MPI_SUM);
}
int aha_mpi_sum_f64(double *buf, size_t n) {
    return reduce_in_place(buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM);
}
int aha_mpi_max_f64(double *buf, size_t n) {
    return reduce_in_place(buf, n, sizeof(double), MPI_DOUBLE, MPI_MAX);
}

int aha_mpi_bcast(void *buf, size_t n, int root) {
    char *p = (char *)buf;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        int rc = MPI_Bcast(p, count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        p += count;
        n -= (size_t)count;
    }
    return MPI_SUCCESS;
}

int aha_mpi_bcast_u64(uint64_t *value, int root) {
    return MPI_Bcast(value, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
}

int aha_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void aha_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
int aha_mpi_finalize(void) { return MPI_Finalize(); }

/* The library's text for an error code, NUL-terminated in out[0..cap). */
void aha_mpi_error_string(int code, char *out, int cap) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0, i;
    if (cap <= 0) return;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    for (i = 0; i < len && i < cap - 1; i++) out[i] = text[i];
    out[i] = '\0';
}
