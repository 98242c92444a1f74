/*
 * bs_conn.h
 *		What beanstalk.c uses of a connection (bs_conn.c); not for others.
 */
#ifndef JOBQ_BS_CONN_H
#define JOBQ_BS_CONN_H

#include "beanstalk.h"

extern TimestampTz io_deadline(int extra_ms);
extern BsStatus bs_fail(BeanstalkConn *conn, int sqlerrcode, const char *detail,
						const char *hint, const char *fmt,...) pg_attribute_printf(5, 6);
extern BsStatus bs_note(BeanstalkConn *conn, BsStatus st, int sqlerrcode,
						const char *fmt,...) pg_attribute_printf(4, 5);
extern void bs_shrink_rbuf(BeanstalkConn *conn);
extern BsStatus bs_connect(BeanstalkConn *conn);
extern BsStatus bs_ensure(BeanstalkConn *conn);
extern BsStatus bs_send_all(BeanstalkConn *conn, bool *gone);
extern BsStatus bs_lost(BeanstalkConn *conn, const char *what);
extern BsStatus bs_read_line_ex(BeanstalkConn *conn, TimestampTz deadline, const char *what,
								bool *empty, char **line);
extern BsStatus bs_read_line(BeanstalkConn *conn, TimestampTz deadline, const char *what,
							 char **line);
extern BsStatus bs_read_data(BeanstalkConn *conn, size_t len, TimestampTz deadline,
							 const char *what, char **data);

#endif							/* JOBQ_BS_CONN_H */
